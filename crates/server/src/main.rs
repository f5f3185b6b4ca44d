//! `confianza-server`: see `confianza-server --help`.

fn main() {
    eprintln!("confianza-server: being written");
    std::process::exit(2);
}
