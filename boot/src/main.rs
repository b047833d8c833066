fn main() {
    std::process::exit(rootstock_boot::cli::main(std::env::args_os().collect()));
}
