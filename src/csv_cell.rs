//! CSV cells every CSV billxfer writes shares: formula prefixes neutralized,
//! quoting where needed (docs/EXPORTS.md, "CSV and spreadsheets").

/// Makes a CSV text cell safe to open in a spreadsheet: a cell starting with
/// `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'` so it is shown
/// as text instead of being run as a formula. Numeric columns are not passed here.
pub fn csv_text(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// Quotes a CSV text field when needed and neutralizes formula prefixes.
pub fn csv_field(s: &str) -> String {
    let s = csv_text(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_prefixes_are_neutralized() {
        assert_eq!(csv_text("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_text("+1"), "'+1");
        assert_eq!(csv_text("@x"), "'@x");
        assert_eq!(csv_text("\tx"), "'\tx");
        assert_eq!(csv_text("AmazonEC2"), "AmazonEC2");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
