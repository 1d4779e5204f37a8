//! RWKV-6 ("Finch"): weights in the official layout and the forward pass.
//!
//! RWKV-6 keeps RWKV-5.2's matrix state per head (row = key index, column = value index) and
//! makes the token shift and the decay depend on the input: five LoRAs (`time_maa_w1/w2`) give
//! per-token mixes for w, k, v, r, g, and a sixth (`time_decay_w1/w2`) a per-token decay
//! `w = exp(−exp(time_decay + lora))`. Outputs are group-normed per head (eps 64e-5), gated by
//! `silu(g)`. Formulas follow the official `rwkv` package (0.8.32, `att_seq_v6_0`).

use crate::blocks::{
    ChannelMix, EmbedHead, FfnScratch, MixForm, WeightReader, count_layers, embedding_dims, head_shape, run_chunks,
    shape_error, wkv5_heads,
};
use crate::error::Result;
use crate::kernels::{
    Wkv5Inputs, add_into, decay_v6, group_norm_heads, mix_delta, mul_into, shift_delta, silu_inplace, tanh_inplace,
};
use crate::linalg::{Mat, layer_norm_rows, linear};
use crate::state::{LayerState, State};
use crate::tensor::TensorMap;
use crate::types::{Generation, Logits, ModelInfo};

/// Group-norm epsilon of the time mix's output (the official value, `head_size_divisor² · 1e-5`).
const GROUP_NORM_EPS: f32 = 64e-5;

#[derive(Debug)]
struct Layer {
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    maa_x: Vec<f32>,
    /// Static mixes for w, k, v, r, g.
    maa: [Vec<f32>; 5],
    /// Mix LoRAs for w, k, v, r, g: down `[D, C]` and up `[C, D]`.
    maa_lora: [(Mat, Mat); 5],
    /// `time_decay`, per channel.
    decay: Vec<f32>,
    decay_w1: Mat,
    decay_w2: Mat,
    /// `time_faaaa`, per channel.
    u: Vec<f32>,
    key: Mat,
    value: Mat,
    receptance: Mat,
    gate: Mat,
    output: Mat,
    lnx_w: Vec<f32>,
    lnx_b: Vec<f32>,
    ffn: ChannelMix,
}

/// An RWKV-6 model's weights, as f32.
#[derive(Debug)]
pub struct V6 {
    info: ModelInfo,
    io: EmbedHead,
    layers: Vec<Layer>,
    d_mix: usize,
    d_decay: usize,
}

impl V6 {
    /// Build the model from official-layout tensors, feeding every tensor it uses to `hash`.
    pub fn from_tensors(map: &TensorMap, weights: crate::Weights, hash: &mut blake3::Hasher) -> Result<V6> {
        let (vocab, c) = embedding_dims(map)?;
        let n_layer = count_layers(map, "att.time_maa_x")?;
        let faaaa = "blocks.0.att.time_faaaa";
        let (h, n) = match head_shape(&map.get(faaaa)?.shape).as_slice() {
            [h, n] if *h > 0 && h.checked_mul(*n) == Some(c) => (*h, *n),
            _ => return Err(shape_error(map, faaaa, vec![c / 64, 64])),
        };
        let w1 = "blocks.0.att.time_maa_w1";
        let d_mix = match map.get(w1)?.shape.as_slice() {
            [cc, d5] if *cc == c && *d5 > 0 && d5 % 5 == 0 => d5 / 5,
            _ => return Err(shape_error(map, w1, vec![c, 160])),
        };
        let dw1 = "blocks.0.att.time_decay_w1";
        let d_decay = match map.get(dw1)?.shape.as_slice() {
            [cc, d] if *cc == c && *d > 0 => *d,
            _ => return Err(shape_error(map, dw1, vec![c, 64])),
        };
        let d_ffn = ChannelMix::hidden_width(map, 0, c)?;
        let mut w = WeightReader::new(map, hash, weights);
        let emb = EmbedHead::load_embedding(&mut w, vocab, c)?;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let a = format!("blocks.{i}.att.");
            let ln1_w = w.vec(&format!("blocks.{i}.ln1.weight"), c)?;
            let ln1_b = w.vec(&format!("blocks.{i}.ln1.bias"), c)?;
            let maa_x = w.vec(&format!("{a}time_maa_x"), c)?;
            let maa = [
                w.vec(&format!("{a}time_maa_w"), c)?,
                w.vec(&format!("{a}time_maa_k"), c)?,
                w.vec(&format!("{a}time_maa_v"), c)?,
                w.vec(&format!("{a}time_maa_r"), c)?,
                w.vec(&format!("{a}time_maa_g"), c)?,
            ];
            // time_maa_w1 is [C, 5·D] (input-major, the five LoRAs side by side); time_maa_w2 is
            // [5, D, C]. Keep each LoRA as [out, in] matrices.
            let w1 = w.exact(&format!("{a}time_maa_w1"), &[c, 5 * d_mix])?;
            let w2 = w.exact(&format!("{a}time_maa_w2"), &[5, d_mix, c])?;
            let maa_quant = w.map.act_quant(&format!("{a}time_maa_w1"));
            let maa_lora = std::array::from_fn(|k| {
                let mut down = vec![0f32; d_mix * c];
                for ci in 0..c {
                    for d in 0..d_mix {
                        down[d * c + ci] = w1[ci * 5 * d_mix + k * d_mix + d];
                    }
                }
                let up = Mat::from_transposed(c, d_mix, w2[k * d_mix * c..(k + 1) * d_mix * c].to_vec());
                let mut down = Mat::new(d_mix, c, down);
                down.set_act_quant(maa_quant);
                (down, up)
            });
            let decay = w.vec(&format!("{a}time_decay"), c)?;
            let decay_w1 = w.mat_t(&format!("{a}time_decay_w1"), d_decay, c)?;
            let decay_w2 = w.mat_t(&format!("{a}time_decay_w2"), c, d_decay)?;
            let u = w.vec(&format!("{a}time_faaaa"), c)?;
            layers.push(Layer {
                ln1_w,
                ln1_b,
                maa_x,
                maa,
                maa_lora,
                decay,
                decay_w1,
                decay_w2,
                u,
                receptance: w.mat(&format!("{a}receptance.weight"), c, c)?,
                key: w.mat(&format!("{a}key.weight"), c, c)?,
                value: w.mat(&format!("{a}value.weight"), c, c)?,
                gate: w.mat(&format!("{a}gate.weight"), c, c)?,
                output: w.mat(&format!("{a}output.weight"), c, c)?,
                lnx_w: w.vec(&format!("{a}ln_x.weight"), c)?,
                lnx_b: w.vec(&format!("{a}ln_x.bias"), c)?,
                ffn: ChannelMix::load(&mut w, i, c, ChannelMix::hidden_width(map, i, c)?, MixForm::Maa)?,
            });
        }
        let io = EmbedHead::load_head(&mut w, emb, vocab, c)?;
        Ok(V6 {
            info: ModelInfo {
                generation: Generation::V6,
                arch: "6.0",
                vocab,
                n_embd: c,
                n_layer,
                n_head: h,
                head_size: n,
                d_ffn,
                group_norm_eps: Some(GROUP_NORM_EPS),
            },
            io,
            layers,
            d_mix,
            d_decay,
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
            for m in [&mut l.key, &mut l.value, &mut l.receptance, &mut l.gate, &mut l.output] {
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
        let mut sc = Scratch::new(rows, c, f, self.d_mix.max(self.d_decay));
        let out = run_chunks(tokens, logits, chunk, &self.io, self.info.vocab, |x, t| {
            for (l, ls) in self.layers.iter().zip(state.layers.iter_mut()) {
                l.time_mix(x, ls, t, self.info.head_size, &mut sc);
                l.ffn.forward(x, &mut ls.ffn_x, t, &mut sc.ffn);
            }
        });
        state.tokens += tokens.len() as u64;
        out
    }
}

impl Layer {
    fn time_mix(&self, x: &mut [f32], ls: &mut LayerState, t: usize, n: usize, sc: &mut Scratch) {
        let c = self.u.len();
        let tc = t * c;
        layer_norm_rows(&x[..tc], c, &self.ln1_w, &self.ln1_b, &mut sc.xx[..tc]);
        shift_delta(&sc.xx[..tc], &mut ls.att_x, &mut sc.delta[..tc]);
        mix_delta(&sc.xx[..tc], &sc.delta[..tc], &self.maa_x, None, &mut sc.xxx[..tc]);
        for (k, (down, up)) in self.maa_lora.iter().enumerate() {
            let lo = &mut sc.lora[..t * down.rows()];
            linear(&sc.xxx[..tc], t, down, lo);
            tanh_inplace(lo);
            linear(lo, t, up, &mut sc.tmp[..tc]);
            mix_delta(
                &sc.xx[..tc],
                &sc.delta[..tc],
                &self.maa[k],
                Some(&sc.tmp[..tc]),
                &mut sc.mix[k][..tc],
            );
        }
        let [xw, xk, xv, xr, xg] = &sc.mix;
        linear(&xr[..tc], t, &self.receptance, &mut sc.r[..tc]);
        linear(&xk[..tc], t, &self.key, &mut sc.k[..tc]);
        linear(&xv[..tc], t, &self.value, &mut sc.v[..tc]);
        linear(&xg[..tc], t, &self.gate, &mut sc.g[..tc]);
        silu_inplace(&mut sc.g[..tc]);
        let lo = &mut sc.lora[..t * self.decay_w1.rows()];
        linear(&xw[..tc], t, &self.decay_w1, lo);
        tanh_inplace(lo);
        linear(lo, t, &self.decay_w2, &mut sc.w[..tc]);
        decay_v6(&mut sc.w[..tc], &self.decay);
        let inputs = Wkv5Inputs {
            r: &sc.r[..tc],
            k: &sc.k[..tc],
            v: &sc.v[..tc],
            w: &sc.w[..tc],
            w_per_token: true,
            u: &self.u,
            c,
            n,
            t,
        };
        wkv5_heads(&inputs, &mut ls.wkv, &mut sc.o_heads);
        group_norm_heads(
            &sc.o_heads[..tc],
            n,
            GROUP_NORM_EPS,
            &self.lnx_w,
            &self.lnx_b,
            &mut sc.o[..tc],
        );
        mul_into(&mut sc.o[..tc], &sc.g[..tc]);
        linear(&sc.o[..tc], t, &self.output, &mut sc.tmp[..tc]);
        add_into(&mut x[..tc], &sc.tmp[..tc]);
    }
}

/// Buffers for one chunk, reused for every chunk of a forward call.
struct Scratch {
    xx: Vec<f32>,
    delta: Vec<f32>,
    xxx: Vec<f32>,
    lora: Vec<f32>,
    mix: [Vec<f32>; 5],
    r: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    g: Vec<f32>,
    w: Vec<f32>,
    o_heads: Vec<f32>,
    o: Vec<f32>,
    tmp: Vec<f32>,
    ffn: FfnScratch,
}

impl Scratch {
    fn new(t: usize, c: usize, f: usize, d: usize) -> Self {
        let z = || vec![0f32; t * c];
        Scratch {
            xx: z(),
            delta: z(),
            xxx: z(),
            lora: vec![0f32; t * d],
            mix: [z(), z(), z(), z(), z()],
            r: z(),
            k: z(),
            v: z(),
            g: z(),
            w: z(),
            o_heads: z(),
            o: z(),
            tmp: z(),
            ffn: FfnScratch::new(t, c, f),
        }
    }
}
