/* The CUDA backend: runtime/backend.h's interface on one GPU, composed as
 * the CPU backend is (runtime/cpu_backend.c) from the kernels of
 * gpu/kernels.h and cuBLAS matmuls in fp32, tf32 or bf16. */
#ifndef TRAINPIPE_GPU_CUDA_BACKEND_H
#define TRAINPIPE_GPU_CUDA_BACKEND_H

#include <stddef.h>

/* runtime/ is C: its declarations get C linkage in a .cu file too */
#ifdef __cplusplus
extern "C" {
#endif

#include "runtime/backend.h"

/* NULL with a reason in ERR: no device, a bad configuration, or not
 * enough device memory. */
struct backend *cuda_backend_create(const struct backend_spec *spec, char *err, size_t err_size);

/* What the CUDA backend can do another way, for tests and benchmarks, in
 * bf16 (otherwise ignored): FUSED_ATTENTION, gpu/attention.h's kernels in
 * place of cuBLAS and the [B, H, T, T] attention matrix, for the head
 * sizes they take; MATMUL_EPILOGUES, cuBLASLt matmuls that add qkv's bias
 * and run fc's bias and GELU and their backward in their epilogues, where
 * cuBLASLt has an algorithm for them. OPT NULL: the defaults, all false. */
struct cuda_options {
  bool fused_attention;
  bool matmul_epilogues;
};

struct backend *cuda_backend_create_with(const struct backend_spec *spec, const struct cuda_options *opt, char *err,
                                         size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
