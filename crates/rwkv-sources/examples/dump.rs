//! Prints the documents of the inputs given on the command line, text and parts included.
//! A debugging aid: `cargo run -p rwkv-sources --example dump -- PATH|URL...`.
#![allow(clippy::print_stdout)]

use futures::StreamExt;
use rwkv_sources::{Input, Options, Sources};

#[tokio::main]
async fn main() {
    let inputs = std::env::args().skip(1).map(|a| Input::parse(&a));
    let sources = Sources::new(Options::default())
        .expect("default options are valid")
        .inputs(inputs);
    let mut stream = std::pin::pin!(sources.stream());
    while let Some(item) = stream.next().await {
        match item {
            Ok(d) => {
                println!(
                    "=== {} [{}] {} ({} bytes, {} lines)",
                    d.location(),
                    d.kind.as_str(),
                    d.title,
                    d.bytes(),
                    d.lines()
                );
                for p in &d.parts {
                    println!(
                        "--- part: {} @{}..{} (line {})",
                        p.title,
                        p.start,
                        p.end,
                        d.line_of(p.start)
                    );
                }
                println!("{}", d.text);
            }
            Err(e) => println!("!!! {} [{}]: {e}", e.at(), e.reason()),
        }
    }
}
