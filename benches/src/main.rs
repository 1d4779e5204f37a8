//! Quick fold-speed probe (the full benchmark is being built).
use std::time::Instant;
use rwkv_bench::{Shape, random_v7};
use rwkv_model::{Logits, Model};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(512);
    let chunk: usize = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let map = random_v7(Shape::rwkv7_0b1(), 42);
    let mut m = Model::from_tensors(&map)?;
    drop(map);
    m.set_chunk_len(chunk);
    let toks: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % 65536).collect();
    let mut s = m.new_state();
    let t = Instant::now();
    m.forward_seq(&toks, &mut s, Logits::Last)?;
    let dt = t.elapsed().as_secs_f64();
    eprintln!("fold {n} tokens chunk {chunk}: {:.1} tok/s", n as f64 / dt);
    let t = Instant::now();
    let mut s = m.new_state();
    for &tk in &toks[..32] { m.forward_token(tk, &mut s)?; }
    eprintln!("decode f32: {:.1} tok/s", 32.0 / t.elapsed().as_secs_f64());
    m.enable_bf16_generation();
    let t = Instant::now();
    for &tk in &toks[..32] { m.forward_token(tk, &mut s)?; }
    eprintln!("decode bf16: {:.1} tok/s", 32.0 / t.elapsed().as_secs_f64());
    Ok(())
}
