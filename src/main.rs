fn main() {
    std::process::exit(rootstock::cli::main(std::env::args_os().collect()));
}
