fn main() {
    std::process::exit(billxfer::cli::main());
}
