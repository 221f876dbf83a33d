//! Fetches and converts known models into `$SOTTO_HOME` (default `~/.cache/sotto`):
//! `SOTTO_HOME=/tmp/sotto-home cargo run --release --example convert -- tiny.en base`
#[cfg(feature = "convert")]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let models = if args.is_empty() {
        vec!["tiny.en".to_string(), "base".to_string()]
    } else {
        args
    };
    let log = |m: &str| eprintln!("{m}");
    let home = sotto::convert::sotto_home(std::env::var_os("SOTTO_HOME"), std::env::var_os("HOME"));
    for m in &models {
        match sotto::convert::fetch(&home, m, &log) {
            Ok(p) => println!("{}", p.display()),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(not(feature = "convert"))]
fn main() {
    eprintln!("build with --features convert");
    std::process::exit(2);
}
