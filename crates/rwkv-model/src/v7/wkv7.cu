// RWKV-7's WKV recurrence on a GPU: one block per (lane, head), one thread per value row i,
// which holds row i of the head's state S (S[i][j], j = key index) in registers. Compiled at
// run time with NVRTC by the CUDA backend (src/cuda/mod.rs). Its CPU reference, the same loops
// in the same order, is wkv_ref.rs (tested against the CPU backend's kernel in CI); the steps
// are numbered alike in both.
//
// Rows are [R, C] f32, every lane's rows one after another: lane l has rows
// row0[l] .. row0[l] + rows[l], its state at slot[l] of `state` ([slots, H, N, N]; the
// reference takes slot = l). `v` already has the value residual
// applied (the caller mixes it with candle ops). N is a compile-time constant (-DHEAD_SIZE=).

#ifndef HEAD_SIZE
#define HEAD_SIZE 64
#endif
#define N HEAD_SIZE

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// Sum of N values in shared memory, in index order (every thread gets the same bits).
__device__ __forceinline__ float ordered_sum(const float* s) {
    float acc = 0.0f;
#pragma unroll 8
    for (int j = 0; j < N; ++j) acc += s[j];
    return acc;
}

extern "C" __global__ void wkv7_lanes(
    const int C, const int* __restrict__ row0, const int* __restrict__ rows,
    const int* __restrict__ slot, float* __restrict__ state,
    const float* __restrict__ r, const float* __restrict__ w_raw, const float* __restrict__ k_raw,
    const float* __restrict__ v, const float* __restrict__ a_raw, const float* __restrict__ g,
    const float* __restrict__ w0, const float* __restrict__ a0, const float* __restrict__ k_k,
    const float* __restrict__ k_a, const float* __restrict__ r_k,
    const float* __restrict__ lnx_w, const float* __restrict__ lnx_b,
    float* __restrict__ out)
{
    const int h = blockIdx.x, lane = blockIdx.y, i = threadIdx.x;
    const int H = gridDim.x;
    const int hc = h * N + i;  // this thread's column in the layer's vectors
    __shared__ float sw[N], sk[N], skk[N], sb[N], sr[N], red[N];

    float S[N];
    float* st = state + ((size_t)slot[lane] * H + h) * N * N + (size_t)i * N;
#pragma unroll
    for (int j = 0; j < N; ++j) S[j] = st[j];

    const float w0i = w0[hc], a0i = a0[hc], kki = k_k[hc], kai = k_a[hc], rki = r_k[hc];
    const float lnw = lnx_w[hc], lnb = lnx_b[hc];
    const int t0 = row0[lane], tn = rows[lane];
    for (int t = 0; t < tn; ++t) {
        const size_t col = (size_t)(t0 + t) * C + h * N + i;
        // 1. This thread prepares key index j = i of the token.
        const float wj = expf(-0.606531f * sigmoidf_(w0i + w_raw[col]));
        const float aj = sigmoidf_(a0i + a_raw[col]);
        const float kx = k_raw[col];
        const float kkj = kx * kki;
        red[i] = kkj * kkj;
        __syncthreads();
        // 2. k̂ = kk / max(|kk|, 1e-12); k = k · (1 + (a − 1) · k_a); b = k̂ · a.
        const float norm = fmaxf(sqrtf(ordered_sum(red)), 1e-12f);
        const float kn = kkj / norm;
        sw[i] = wj;
        sk[i] = kx * fmaf(aj - 1.0f, kai, 1.0f);
        skk[i] = kn;
        sb[i] = kn * aj;
        sr[i] = r[col];
        __syncthreads();
        // 3. Row i: sa = S·k̂; S ← S·diag(w) − sa ⊗ b + v ⊗ k; y = S·r.
        const float vi = v[col];
        float sa = 0.0f;
#pragma unroll
        for (int j = 0; j < N; ++j) sa = fmaf(S[j], skk[j], sa);
        float y = 0.0f;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            const float nv = fmaf(vi, sk[j], fmaf(sa, -sb[j], S[j] * sw[j]));
            S[j] = nv;
            y = fmaf(nv, sr[j], y);
        }
        // 4. Group norm of y over the head (eps 64e-5), bonus (Σ r·k·r_k) · v, gate.
        red[i] = y;
        __syncthreads();
        const float mean = ordered_sum(red) / (float)N;
        __syncthreads();
        const float d = y - mean;
        red[i] = d * d;
        __syncthreads();
        const float var = ordered_sum(red) / (float)N;
        __syncthreads();
        red[i] = sr[i] * sk[i] * rki;
        __syncthreads();
        const float bonus = ordered_sum(red);
        const float normed = fmaf(d * (1.0f / sqrtf(var + 64e-5f)), lnw, lnb);
        out[col] = fmaf(bonus, vi, normed) * g[col];
        __syncthreads();  // shared buffers are rewritten by the next token
    }
#pragma unroll
    for (int j = 0; j < N; ++j) st[j] = S[j];
}
