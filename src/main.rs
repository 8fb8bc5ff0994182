fn main() {
    // polars' worker threads (`billxfer report`) recurse deeply on wide plans (the
    // ~60 columns of a FOCUS roll-up overflowed their default 2 MiB stack when
    // roll-ups were on polars, measured); threads that do not set a size take
    // this one. Only touched pages are committed.
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        std::env::set_var("RUST_MIN_STACK", (64usize << 20).to_string());
    }
    keep_freed_memory();
    std::process::exit(billxfer::cli::main());
}

/// glibc's malloc, by default, serves every allocation above a threshold that grows up
/// to 32 MiB with its own mmap and gives freed heap tops back to the kernel at 128 KiB:
/// the rating tasks allocate and free such column buffers for every batch, and paid for
/// it in page faults (a third of an invoices-only run's time, system time 1.7-2.4 s of
/// 5.3-6.1 s at 20M lines; docs/PERFORMANCE.md, "Allocator"). Fixed thresholds keep freed
/// buffers for reuse. A user's own GLIBC_TUNABLES wins.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only sets malloc parameters; it runs before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        }
    }
}
