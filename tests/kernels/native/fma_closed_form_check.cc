// Host check of the GPU FMA kernel's arithmetic (kernels/src/gpu/fma_closed_form.h), the same steps
// k_fma runs, on the CPU with fmaf: every lane of every variant must end exactly on its start value,
// and a lane perturbed at its first step in any significand bit but the lowest must not.
// Prints "lanes=<n> bad=<n> bits_checked=<n> faults_missed=<n>" and exits 0 only when both are 0.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "gpu/fma_closed_form.h"

static float run(unsigned variant, float x, long iters) {
    float a1[FMA_UNROLL], b1[FMA_UNROLL], a2[FMA_UNROLL], b2[FMA_UNROLL];
    for (unsigned s = 0; s < FMA_UNROLL; s++) fma_operands(variant, s, &a1[s], &b1[s], &a2[s], &b2[s]);
    for (long it = 0; it < iters; it++)
        for (int s = 0; s < FMA_UNROLL; s++) {
            x = std::fmaf(a1[s], b1[s], x);
            x = std::fmaf(a2[s], b2[s], x);
        }
    return x;
}

int main() {
    long lanes = 0, bad = 0, bits = 0, missed = 0;
    for (unsigned variant = 0; variant < 4 * FMA_VARIANTS; variant++)
        for (unsigned chain = 0; chain < FMA_CHAINS; chain++) {
            float x0 = fma_start(variant, chain);
            lanes++;
            bad += run(variant, x0, 2000) != x0;
            for (int bit = 1; bit < 23; bit++) {  // bit 0 (2^-23) lies below the 2^-22 grid
                unsigned u;
                std::memcpy(&u, &x0, sizeof u);
                u ^= 1u << bit;
                float flipped;
                std::memcpy(&flipped, &u, sizeof u);
                bits++;
                missed += run(variant, flipped, 200) == x0;
            }
        }
    std::printf("lanes=%ld bad=%ld bits_checked=%ld faults_missed=%ld\n", lanes, bad, bits, missed);
    return bad || missed ? 1 : 0;
}
