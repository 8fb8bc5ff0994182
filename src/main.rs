fn main() {
    // polars' worker threads (`billxfer report`) recurse deeply on wide plans (the
    // ~60 columns of a FOCUS roll-up overflowed their default 2 MiB stack when
    // roll-ups were on polars, measured); threads that do not set a size take
    // this one. Only touched pages are committed.
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        std::env::set_var("RUST_MIN_STACK", (64usize << 20).to_string());
    }
    std::process::exit(billxfer::cli::main());
}
