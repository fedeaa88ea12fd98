/*
 * The GPU FMA kernel's operands and closed form, host and device alike (stream_gpu.h uses them on the
 * device; tests/kernels compiles this header for the host and checks the arithmetic without a GPU).
 * Define SUANLI_HD as the qualifiers (__host__ __device__) before including; empty for plain C++.
 */
#ifndef SUANLI_GPU_FMA_CLOSED_FORM_H
#define SUANLI_GPU_FMA_CLOSED_FORM_H

#ifndef SUANLI_HD
#define SUANLI_HD
#endif

#define FMA_CHAINS 8    /* independent chains per thread: hide the FMA latency */
#define FMA_VARIANTS 32 /* operand and start-value variants, by thread id */

/*
 * FMA stress with a closed-form answer. Each step adds an exact product and the next subtracts the
 * same product formed from different factors: x0 + (UV)*W - U*(VW) == x0 bit for bit, because every
 * operand is a small odd integer scaled by a power of two and x0 + p fits the float significand
 * (x0 and p in [1,2) with 22 fraction bits, so x0 + p in [2,4) needs no rounding). Nothing contracts:
 * an error made at any step stays in x to the end (there is no multiplication that shrinks it), and a
 * multiplier that is systematically wrong cannot cancel itself, since the two products use different
 * factor bit patterns. The answer is x0, so checking costs nothing on the host. Only a flip of x's
 * lowest significand bit (2^-23, below the 2^-22 grid) is rounded away at the next step.
 */
#define FMA_UNROLL 4 /* operand sets per chain and loop trip: 2 * FMA_UNROLL * FMA_CHAINS FMAs per trip */

SUANLI_HD inline unsigned fma_hash(unsigned v) {
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    return v ^ (v >> 16);
}

/* x0 = 1 + t * 2^-22, t a 22-bit pattern that differs per variant and chain. */
SUANLI_HD inline float fma_start(unsigned variant, unsigned chain) {
    return 1.0f + (float)(fma_hash(variant * FMA_CHAINS + chain + 1u) & 0x3fffffu) * 0x1p-22f;
}

/* Odd U, V, W in [163, 203]: U*V*W in [2^22, 2^23), so p = UVW * 2^-22 lies in [1, 2). */
SUANLI_HD inline void fma_operands(unsigned variant, unsigned set, float *a1, float *b1, float *a2, float *b2) {
    unsigned h = fma_hash(0x51a7u + variant * FMA_UNROLL + set);
    float u = (float)(163u + 2u * (h % 21u)), v = (float)(163u + 2u * ((h >> 8) % 21u)),
          w = (float)(163u + 2u * ((h >> 16) % 21u));
    *a1 = u * v * 0x1p-15f; /* exact: U*V < 2^16 */
    *b1 = w * 0x1p-7f;
    *a2 = -u * 0x1p-7f;
    *b2 = v * w * 0x1p-15f;
}

#endif
