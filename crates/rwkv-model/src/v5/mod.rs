//! RWKV-5 ("Eagle"): versions 5.0 (no gate, decay per head), 5.1 (gate, decay per head) and
//! 5.2 (gate, decay per channel), weights in the official layout, and the forward pass.
//!
//! Each head keeps an `N × N` matrix state (row = key index, column = value index, the official
//! layout): `o_j = Σ_i r_i (u_i k_i v_j + s_ij)`, then `s_ij ← w_i s_ij + k_i v_j`, with
//! `w = exp(−exp(time_decay))` and `u = time_faaaa` (or `exp(time_first)` in checkpoints that
//! predate `time_faaaa`). The outputs are group-normed per head — with epsilon 64e-5 in the
//! official package, 1e-5 in rwkv.cpp, so it is a setting — then gated by `silu(g)` when the
//! model has a gate. Formulas follow the official `rwkv` package (0.8.32).

use crate::blocks::{
    ChannelMix, EmbedHead, FfnScratch, MixForm, WeightReader, count_layers, embedding_dims, head_shape, run_chunks,
    shape_error, wkv5_heads,
};
use crate::error::Result;
use crate::kernels::{Wkv5Inputs, add_into, group_norm_heads, mul_into, shift_mix, silu_inplace};
use crate::linalg::{Mat, layer_norm_rows, linear};
use crate::state::{LayerState, State};
use crate::tensor::TensorMap;
use crate::types::{Generation, Logits, ModelInfo};

#[derive(Debug)]
struct Layer {
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    /// Shift mixes for k, v, r (and g) in the `x + (prev − x) · mix` form.
    mix: Vec<Vec<f32>>,
    /// Decay factor per channel, `exp(−exp(time_decay))` (per-head values repeated).
    w: Vec<f32>,
    /// Current-token bonus per channel.
    u: Vec<f32>,
    key: Mat,
    value: Mat,
    receptance: Mat,
    gate: Option<Mat>,
    output: Mat,
    lnx_w: Vec<f32>,
    lnx_b: Vec<f32>,
    ffn: ChannelMix,
}

/// An RWKV-5.x model's weights, as f32.
#[derive(Debug)]
pub struct V5 {
    info: ModelInfo,
    eps: f32,
    io: EmbedHead,
    layers: Vec<Layer>,
}

/// Heads and whether the decay is per channel, from block 0's `time_decay` (`[H]`, or `[H, N]`
/// from 5.2 on).
fn heads(map: &TensorMap, c: usize) -> Result<(usize, bool)> {
    let name = "blocks.0.att.time_decay";
    let t = map.get(name)?;
    match head_shape(&t.shape).as_slice() {
        [] => Ok((1, false)),
        [h] if *h > 0 && c.is_multiple_of(*h) => Ok((*h, false)),
        [h, n] if *h > 0 && h.checked_mul(*n) == Some(c) => Ok((*h, true)),
        _ => Err(shape_error(map, name, vec![c / 64, 64])),
    }
}

/// A per-head or per-channel vector of `name`, repeated to one value per channel.
fn per_channel(w: &mut WeightReader<'_>, name: &str, h: usize, c: usize) -> Result<Vec<f32>> {
    let numel = w.map.get(name)?.numel();
    if numel == c {
        w.vec(name, c)
    } else {
        let v = w.vec(name, h)?;
        let n = c / h;
        Ok(v.iter().flat_map(|&x| std::iter::repeat_n(x, n)).collect())
    }
}

impl V5 {
    /// Build the model from official-layout tensors, with group-norm epsilon `eps`, feeding
    /// every tensor it uses (and `eps`) to `hash`.
    pub fn from_tensors(map: &TensorMap, eps: f32, weights: crate::Weights, hash: &mut blake3::Hasher) -> Result<V5> {
        let (vocab, c) = embedding_dims(map)?;
        let n_layer = count_layers(map, "att.time_decay")?;
        let (h, decay_per_channel) = heads(map, c)?;
        let n = c / h;
        let gated = map.contains("blocks.0.att.gate.weight");
        let arch = match (gated, decay_per_channel) {
            (false, _) => "5.0",
            (true, false) => "5.1",
            (true, true) => "5.2",
        };
        let d_ffn = ChannelMix::hidden_width(map, 0, c)?;
        let mut w = WeightReader::new(map, hash, weights);
        w.note("group_norm_eps", &eps.to_le_bytes());
        let emb = EmbedHead::load_embedding(&mut w, vocab, c)?;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let a = format!("blocks.{i}.att.");
            let ln1_w = w.vec(&format!("blocks.{i}.ln1.weight"), c)?;
            let ln1_b = w.vec(&format!("blocks.{i}.ln1.bias"), c)?;
            let mut mix = vec![
                w.vec(&format!("{a}time_mix_k"), c)?,
                w.vec(&format!("{a}time_mix_v"), c)?,
                w.vec(&format!("{a}time_mix_r"), c)?,
            ];
            if gated {
                mix.push(w.vec(&format!("{a}time_mix_g"), c)?);
            }
            for m in &mut mix {
                m.iter_mut().for_each(|x| *x = 1.0 - *x);
            }
            let decay = per_channel(&mut w, &format!("{a}time_decay"), h, c)?;
            let faaaa = format!("{a}time_faaaa");
            let u = if map.contains(&faaaa) {
                per_channel(&mut w, &faaaa, h, c)?
            } else {
                let u = per_channel(&mut w, &format!("{a}time_first"), h, c)?;
                u.iter().map(|x| x.exp()).collect()
            };
            let gate = if gated {
                Some(w.mat(&format!("{a}gate.weight"), c, c)?)
            } else {
                None
            };
            layers.push(Layer {
                ln1_w,
                ln1_b,
                mix,
                w: decay.iter().map(|d| (-d.exp()).exp()).collect(),
                u,
                key: w.mat(&format!("{a}key.weight"), c, c)?,
                value: w.mat(&format!("{a}value.weight"), c, c)?,
                receptance: w.mat(&format!("{a}receptance.weight"), c, c)?,
                gate,
                output: w.mat(&format!("{a}output.weight"), c, c)?,
                lnx_w: w.vec(&format!("{a}ln_x.weight"), c)?,
                lnx_b: w.vec(&format!("{a}ln_x.bias"), c)?,
                ffn: ChannelMix::load(&mut w, i, c, ChannelMix::hidden_width(map, i, c)?, MixForm::TimeMix)?,
            });
        }
        let io = EmbedHead::load_head(&mut w, emb, vocab, c)?;
        Ok(V5 {
            info: ModelInfo {
                generation: Generation::V5,
                arch,
                vocab,
                n_embd: c,
                n_layer,
                n_head: h,
                head_size: n,
                d_ffn,
                group_norm_eps: Some(eps),
            },
            eps,
            io,
            layers,
        })
    }

    /// The model's dimensions.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The per-layer WKV state shape, `[H, N, N]`.
    pub fn wkv_shape(&self) -> Vec<usize> {
        vec![self.info.n_head, self.info.head_size, self.info.head_size]
    }

    /// Visit every matrix (for the bf16 copies of generation and of the bf16 fold).
    pub fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        for l in &mut self.layers {
            for m in [&mut l.key, &mut l.value, &mut l.receptance, &mut l.output] {
                f(m);
            }
            if let Some(g) = &mut l.gate {
                f(g);
            }
            l.ffn.for_each_mat(f);
        }
        self.io.for_each_mat(f);
    }

    /// Run `tokens` (already range-checked) from `state`, which is advanced, in chunks of at
    /// most `chunk` tokens.
    pub fn forward(&self, tokens: &[u32], state: &mut State, logits: Logits, chunk: usize) -> Vec<f32> {
        let c = self.info.n_embd;
        let rows = chunk.max(1).min(tokens.len().max(1));
        let f = self.layers.iter().map(|l| l.ffn.hidden()).max().unwrap_or(0);
        let mut sc = Scratch::new(rows, c, f);
        let out = run_chunks(tokens, logits, chunk, &self.io, self.info.vocab, |x, t| {
            for (l, ls) in self.layers.iter().zip(state.layers.iter_mut()) {
                l.time_mix(x, ls, t, self.info.head_size, self.eps, &mut sc);
                l.ffn.forward(x, &mut ls.ffn_x, t, &mut sc.ffn);
            }
        });
        state.tokens += tokens.len() as u64;
        out
    }
}

impl Layer {
    fn time_mix(&self, x: &mut [f32], ls: &mut LayerState, t: usize, n: usize, eps: f32, sc: &mut Scratch) {
        let c = self.u.len();
        let tc = t * c;
        layer_norm_rows(&x[..tc], c, &self.ln1_w, &self.ln1_b, &mut sc.xx[..tc]);
        {
            let [xk, xv, xr, xg] = &mut sc.mix;
            let mixes: Vec<&[f32]> = self.mix.iter().map(|m| m.as_slice()).collect();
            let mut outs: [&mut [f32]; 4] = [&mut xk[..tc], &mut xv[..tc], &mut xr[..tc], &mut xg[..tc]];
            shift_mix(&sc.xx[..tc], &mut ls.att_x, &mixes, &mut outs[..mixes.len()]);
        }
        let [xk, xv, xr, xg] = &sc.mix;
        linear(&xr[..tc], t, &self.receptance, &mut sc.r[..tc]);
        linear(&xk[..tc], t, &self.key, &mut sc.k[..tc]);
        linear(&xv[..tc], t, &self.value, &mut sc.v[..tc]);
        let inputs = Wkv5Inputs {
            r: &sc.r[..tc],
            k: &sc.k[..tc],
            v: &sc.v[..tc],
            w: &self.w,
            w_per_token: false,
            u: &self.u,
            c,
            n,
            t,
        };
        wkv5_heads(&inputs, &mut ls.wkv, &mut sc.o_heads);
        group_norm_heads(&sc.o_heads[..tc], n, eps, &self.lnx_w, &self.lnx_b, &mut sc.o[..tc]);
        if let Some(gate) = &self.gate {
            linear(&xg[..tc], t, gate, &mut sc.g[..tc]);
            silu_inplace(&mut sc.g[..tc]);
            mul_into(&mut sc.o[..tc], &sc.g[..tc]);
        }
        linear(&sc.o[..tc], t, &self.output, &mut sc.tmp[..tc]);
        add_into(&mut x[..tc], &sc.tmp[..tc]);
    }
}

/// Buffers for one chunk, reused for every chunk of a forward call.
struct Scratch {
    xx: Vec<f32>,
    mix: [Vec<f32>; 4],
    r: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    g: Vec<f32>,
    o_heads: Vec<f32>,
    o: Vec<f32>,
    tmp: Vec<f32>,
    ffn: FfnScratch,
}

impl Scratch {
    fn new(t: usize, c: usize, f: usize) -> Self {
        let z = || vec![0f32; t * c];
        Scratch {
            xx: z(),
            mix: [z(), z(), z(), z()],
            r: z(),
            k: z(),
            v: z(),
            g: z(),
            o_heads: z(),
            o: z(),
            tmp: z(),
            ffn: FfnScratch::new(t, c, f),
        }
    }
}
