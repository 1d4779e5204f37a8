//! RWKV-4 (and Raven, its instruction-tuned models): weights in the official layout and the
//! forward pass.
//!
//! The time mix keeps, per channel, a numerator `aa`, a denominator `bb` and their shared
//! exponent `pp` (the official numerically safe form of `Σ e^(w·Δt + k) v / Σ e^(w·Δt + k)`):
//! the layer state's `wkv` buffer is `[3, C]` = `aa`, `bb`, `pp`, and the zero state has
//! `pp = −1e30`, as the official package and rwkv.cpp start. Formulas follow the official `rwkv`
//! package (0.8.32): `time_decay` is used as `−exp(time_decay)`, `time_first` as is, the
//! token-shift mixes are `x·m + prev·(1 − m)`, and `ln0` is folded into the embedding.
//!
//! Sequence mode runs every projection as a `T`-row matrix product and only the recurrence per
//! token; token mode is the same path with `T = 1`.

use crate::blocks::{
    ChannelMix, EmbedHead, FfnScratch, MixForm, WeightReader, count_layers, embedding_dims, run_chunks,
};
use crate::error::Result;
use crate::kernels::{Wkv4State, add_into, mul_into, shift_mix, sigmoid_inplace, wkv4};
use crate::linalg::{Mat, layer_norm_rows, linear};
use crate::state::{LayerState, State};
use crate::tensor::TensorMap;
use crate::types::{Generation, Logits, ModelInfo};

#[derive(Debug)]
struct Layer {
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    /// Shift mixes for k, v, r in the `x + (prev − x) · mix` form.
    mix: [Vec<f32>; 3],
    /// `time_first`: the current token's bonus.
    u: Vec<f32>,
    /// `−exp(time_decay)`.
    w: Vec<f32>,
    key: Mat,
    value: Mat,
    receptance: Mat,
    output: Mat,
    ffn: ChannelMix,
}

/// An RWKV-4 model's weights, as f32.
#[derive(Debug)]
pub struct V4 {
    info: ModelInfo,
    io: EmbedHead,
    layers: Vec<Layer>,
}

impl V4 {
    /// Build the model from official-layout tensors, feeding every tensor it uses to `hash`.
    pub fn from_tensors(map: &TensorMap, weights: crate::Weights, hash: &mut blake3::Hasher) -> Result<V4> {
        let (vocab, c) = embedding_dims(map)?;
        let n_layer = count_layers(map, "att.time_decay")?;
        let d_ffn = ChannelMix::hidden_width(map, 0, c)?;
        let mut w = WeightReader::new(map, hash, weights);
        let emb = EmbedHead::load_embedding(&mut w, vocab, c)?;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let a = format!("blocks.{i}.att.");
            let ln1_w = w.vec(&format!("blocks.{i}.ln1.weight"), c)?;
            let ln1_b = w.vec(&format!("blocks.{i}.ln1.bias"), c)?;
            let mut mix = [
                w.vec(&format!("{a}time_mix_k"), c)?,
                w.vec(&format!("{a}time_mix_v"), c)?,
                w.vec(&format!("{a}time_mix_r"), c)?,
            ];
            for m in &mut mix {
                m.iter_mut().for_each(|x| *x = 1.0 - *x);
            }
            let decay = w.vec(&format!("{a}time_decay"), c)?;
            let u = w.vec(&format!("{a}time_first"), c)?;
            let layer = Layer {
                ln1_w,
                ln1_b,
                mix,
                u,
                w: decay.iter().map(|d| -d.exp()).collect(),
                key: w.mat(&format!("{a}key.weight"), c, c)?,
                value: w.mat(&format!("{a}value.weight"), c, c)?,
                receptance: w.mat(&format!("{a}receptance.weight"), c, c)?,
                output: w.mat(&format!("{a}output.weight"), c, c)?,
                ffn: ChannelMix::load(&mut w, i, c, ChannelMix::hidden_width(map, i, c)?, MixForm::TimeMix)?,
            };
            layers.push(layer);
        }
        let io = EmbedHead::load_head(&mut w, emb, vocab, c)?;
        Ok(V4 {
            info: ModelInfo {
                generation: Generation::V4,
                arch: "4",
                vocab,
                n_embd: c,
                n_layer,
                n_head: 0,
                head_size: 0,
                d_ffn,
                group_norm_eps: None,
            },
            io,
            layers,
        })
    }

    /// The model's dimensions.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The per-layer WKV state shape: `[3, C]` (aa, bb, pp).
    pub fn wkv_shape(&self) -> Vec<usize> {
        vec![3, self.info.n_embd]
    }

    /// Visit every matrix (for the bf16 copies of generation and of the bf16 fold).
    pub fn for_each_mat(&mut self, f: &mut dyn FnMut(&mut Mat)) {
        for l in &mut self.layers {
            for m in [&mut l.key, &mut l.value, &mut l.receptance, &mut l.output] {
                f(m);
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
                l.time_mix(x, ls, t, &mut sc);
                l.ffn.forward(x, &mut ls.ffn_x, t, &mut sc.ffn);
            }
        });
        state.tokens += tokens.len() as u64;
        out
    }
}

impl Layer {
    fn time_mix(&self, x: &mut [f32], ls: &mut LayerState, t: usize, sc: &mut Scratch) {
        let c = self.u.len();
        let tc = t * c;
        layer_norm_rows(&x[..tc], c, &self.ln1_w, &self.ln1_b, &mut sc.xx[..tc]);
        {
            let [xk, xv, xr] = &mut sc.mix;
            shift_mix(
                &sc.xx[..tc],
                &mut ls.att_x,
                &[&self.mix[0], &self.mix[1], &self.mix[2]],
                &mut [&mut xk[..tc], &mut xv[..tc], &mut xr[..tc]],
            );
        }
        let [xk, xv, xr] = &sc.mix;
        linear(&xr[..tc], t, &self.receptance, &mut sc.r[..tc]);
        sigmoid_inplace(&mut sc.r[..tc]);
        linear(&xk[..tc], t, &self.key, &mut sc.k[..tc]);
        linear(&xv[..tc], t, &self.value, &mut sc.v[..tc]);
        let (aa, rest) = ls.wkv.split_at_mut(c);
        let (bb, pp) = rest.split_at_mut(c);
        wkv4(
            &sc.k[..tc],
            &sc.v[..tc],
            &self.u,
            &self.w,
            Wkv4State { aa, bb, pp },
            &mut sc.o[..tc],
        );
        mul_into(&mut sc.o[..tc], &sc.r[..tc]);
        linear(&sc.o[..tc], t, &self.output, &mut sc.tmp[..tc]);
        add_into(&mut x[..tc], &sc.tmp[..tc]);
    }
}

/// Buffers for one chunk, reused for every chunk of a forward call.
struct Scratch {
    xx: Vec<f32>,
    mix: [Vec<f32>; 3],
    r: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    tmp: Vec<f32>,
    ffn: FfnScratch,
}

impl Scratch {
    fn new(t: usize, c: usize, f: usize) -> Self {
        let z = || vec![0f32; t * c];
        Scratch {
            xx: z(),
            mix: [z(), z(), z()],
            r: z(),
            k: z(),
            v: z(),
            o: z(),
            tmp: z(),
            ffn: FfnScratch::new(t, c, f),
        }
    }
}
