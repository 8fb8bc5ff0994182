#!/usr/bin/env bash
# Opens a finished run's HTML pages in headless Chromium and checks that they render.
#
#   benches/browser_check.sh OUT/PERIOD [TEXT]
#
# OUT/PERIOD is the output folder of a finished `billxfer run` (e.g. out/2026-10).
# For partner/index.html and every customers/*/invoice.html it
#   - takes a screenshot (kept in $SHOTS_DIR, default a new temp folder) and checks it is not trivial;
#   - dumps the DOM after load (--dump-dom) and checks that the page's total figure is in it
#     (the invoice's "total" from invoice.json; the customers' pro forma total from manifest.json);
#   - checks that the DOM holds no <script> element, keeps its Content-Security-Policy, and that
#     Chromium logged no console message, uncaught error or blocked load (the pages need no script
#     and load nothing).
# With TEXT (e.g. an org name containing <script> or quotes), it also checks that TEXT appears as
# text (HTML-escaped in the serialized DOM) on the dashboard and on at least one invoice.
# Builds nothing. Needs /usr/bin/chromium (Debian: apt-get install chromium), or set CHROMIUM.
# Exits non-zero on the first failure.
set -euo pipefail

dir="${1:?usage: browser_check.sh OUT/PERIOD [TEXT]}"
text="${2:-}"
dir="$(cd "$dir" && pwd)"
chromium="${CHROMIUM:-/usr/bin/chromium}"
shots="${SHOTS_DIR:-$(mktemp -d)}"
mkdir -p "$shots"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

[ -x "$chromium" ] || { echo "browser check: $chromium not found (apt-get install chromium)" >&2; exit 1; }
[ -f "$dir/manifest.json" ] || { echo "browser check: $dir is not a finished run (no manifest.json)" >&2; exit 1; }

fail() {
    echo "browser check: FAIL: $*" >&2
    exit 1
}

# The value of "key": "value" on the first line of a JSON file that has the key (pretty-printed output).
json_value() {
    grep -m1 "\"$2\": \"" "$1" | sed -e "s/.*\"$2\": \"\([^\"]*\)\".*/\1/"
}

# Runs headless Chromium with a fresh profile; stderr (the log) goes to $2.
chrome() {
    local log="$1"
    shift
    local profile
    profile="$(mktemp -d -p "$work")"
    timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-extensions --hide-scrollbars --user-data-dir="$profile" \
        --enable-logging=stderr --v=0 "$@" 2>"$log"
}

# HTML-escapes text as the DOM serializer does for text nodes.
dom_text() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
}

pages=0
text_on_dashboard=0
text_on_invoices=0

check_page() {
    local page="$1" figure="$2" name="$3" size="$4"
    local url="file://$page"
    local png="$shots/$name.png" dom="$work/$name.dom.html"
    chrome "$work/$name.shot.log" --window-size="$size" --screenshot="$png" "$url" >/dev/null ||
        fail "$name: chromium could not take a screenshot (see $work/$name.shot.log)"
    chrome "$work/$name.dom.log" --dump-dom "$url" >"$dom" ||
        fail "$name: chromium could not dump the DOM"
    [ -s "$png" ] || fail "$name: no screenshot"
    local png_bytes dom_bytes
    png_bytes=$(stat -c %s "$png")
    dom_bytes=$(stat -c %s "$dom")
    [ "$png_bytes" -gt 20000 ] || fail "$name: screenshot is only $png_bytes bytes (blank page?)"
    [ "$dom_bytes" -gt 2000 ] || fail "$name: DOM is only $dom_bytes bytes"
    grep -qF ">$figure<" "$dom" || fail "$name: the total $figure is not in the rendered page"
    grep -q 'http-equiv="Content-Security-Policy"' "$dom" || fail "$name: the page has no Content-Security-Policy"
    if grep -qi '<script' "$dom"; then
        fail "$name: the DOM holds a <script> element"
    fi
    local errors
    errors=$(cat "$work/$name.shot.log" "$work/$name.dom.log" |
        grep -E 'CONSOLE|Uncaught|Refused to|ERR_FILE_NOT_FOUND|Not allowed to load' || true)
    [ -z "$errors" ] || fail "$name: the browser logged:
$errors"
    if [ -n "$text" ]; then
        local esc
        esc="$(dom_text "$text")"
        if grep -qF -- "$esc" "$dom"; then
            case "$name" in
            dashboard) text_on_dashboard=1 ;;
            *) text_on_invoices=$((text_on_invoices + 1)) ;;
            esac
        fi
    fi
    pages=$((pages + 1))
    echo "browser check: $name ok (screenshot $png_bytes bytes, DOM $dom_bytes bytes, total $figure)"
}

# The dashboard: the customers' pro forma total, as in the manifest.
proforma="$(grep -A3 '"totals_customers"' "$dir/manifest.json" | json_value /dev/stdin proforma)"
[ -n "$proforma" ] || fail "no pro forma total in $dir/manifest.json"
[ -f "$dir/partner/index.html" ] || fail "no partner/index.html"
check_page "$dir/partner/index.html" "$proforma" dashboard 1280,2200

# Every customer invoice: its total, as in its invoice.json.
for inv in "$dir"/customers/*/invoice.html; do
    [ -f "$inv" ] || fail "no customer invoice page in $dir/customers"
    org="$(basename "$(dirname "$inv")")"
    total="$(json_value "$(dirname "$inv")/invoice.json" total)"
    [ -n "$total" ] || fail "$org: no total in invoice.json"
    check_page "$inv" "$total" "invoice-$org" 1000,1500
done

if [ -n "$text" ]; then
    [ "$text_on_dashboard" = 1 ] || fail "the text '$text' is not shown as text on the dashboard"
    [ "$text_on_invoices" -ge 1 ] || fail "the text '$text' is not shown as text on any invoice"
    echo "browser check: '$text' is shown as text on the dashboard and $text_on_invoices invoice(s)"
fi
echo "browser check: $pages page(s) ok; screenshots in $shots"
