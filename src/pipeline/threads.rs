//! How many worker threads a run uses (`--threads`).

/// The most worker threads `--threads` accepts; more is refused when the
/// arguments are parsed ([`parse_threads`]).
pub const MAX_THREADS: usize = 65_536;

/// Worker threads per CPU above which `--threads` is lowered (with a warning):
/// more threads than that only add start-up time and memory.
pub const THREADS_PER_CPU: usize = 4;

/// Parses the value of `--threads`: a whole number from 1 to [`MAX_THREADS`].
pub fn parse_threads(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is not a number of threads (a whole number from 1 to {MAX_THREADS})"
        ));
    }
    match t.parse::<usize>() {
        Ok(0) => Err(format!(
            "--threads 0: give 1 to {MAX_THREADS}, or leave --threads out for one thread per core"
        )),
        Ok(n) if n <= MAX_THREADS => Ok(n),
        // Digits only: a parse failure is a number beyond usize.
        _ => Err(format!("--threads {t} is too many: at most {MAX_THREADS}")),
    }
}

/// The thread count a run uses for `--threads n`: `n`, lowered to
/// [`THREADS_PER_CPU`] × CPUs (and to [`MAX_THREADS`]); the warning says so.
pub fn effective_threads(n: usize, cpus: usize) -> (usize, Option<String>) {
    let cap = cpus.max(1).saturating_mul(THREADS_PER_CPU).min(MAX_THREADS);
    let n = n.max(1);
    if n > cap {
        (
            cap,
            Some(format!(
                "warning: --threads {n} is more than {THREADS_PER_CPU} per CPU ({cpus} CPUs available); using {cap} threads"
            )),
        )
    } else {
        (n, None)
    }
}

/// Sets the size of rayon's global pool (`--threads`); call before any work.
/// Counts above [`THREADS_PER_CPU`] per CPU are lowered, with a warning on stderr.
pub fn configure_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
        let (n, warning) = effective_threads(n, cpus);
        if let Some(w) = warning {
            eprintln!("billxfer: {w}");
        }
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}
