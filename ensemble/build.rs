//! Declares the `tokio_unstable` cfg, which the simulation reads: built with it
//! (`--cfg tokio_unstable`, see the repository's `.cargo/config.toml`), Tokio's own random
//! choices (which ready branch of a `select!` goes first) are seeded too.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tokio_unstable)");
}
