/* One parameter's AdamW update (Loshchilov and Hutter: decoupled weight
 * decay), the formula behind cpu_kernels.h's adamw_update and the CUDA
 * backend's gpu_adamw_update: one definition, so that the two backends
 * cannot drift apart. C, and C++ for nvcc, where it is also device code. */
#ifndef TRAINPIPE_ADAMW_ELEMENT_H
#define TRAINPIPE_ADAMW_ELEMENT_H

#include <math.h>

#ifdef __CUDACC__
#define ADAMW_ELEMENT_FUNCTION __host__ __device__ static inline
#else
#define ADAMW_ELEMENT_FUNCTION static inline
#endif

/* A step's numbers, the same for every parameter: c1 and c2 are the bias
 * corrections 1 - beta1^t and 1 - beta2^t. */
struct adamw_constants {
  float lr, beta1, beta2, eps, weight_decay, grad_scale, c1, c2;
};

/* Step T's constants (t counts from 1). The bias corrections are computed
 * in double and rounded once: 1 - beta2^t is small in the first steps and
 * powf would lose digits of it. */
static inline struct adamw_constants adamw_constants_at(float lr, float beta1, float beta2, float eps,
                                                        float weight_decay, float grad_scale, int t) {
  struct adamw_constants k;
  k.lr = lr;
  k.beta1 = beta1;
  k.beta2 = beta2;
  k.eps = eps;
  k.weight_decay = weight_decay;
  k.grad_scale = grad_scale;
  k.c1 = (float)(1.0 - pow(beta1, t));
  k.c2 = (float)(1.0 - pow(beta2, t));
  return k;
}

/* *P, *M and *V after one step with gradient GRAD, scaled by grad_scale
 * first (clipping): p -= lr (mhat / (sqrt(vhat) + eps) + weight_decay p),
 * with p before the step. */
ADAMW_ELEMENT_FUNCTION void adamw_element(float *p, float *m, float *v, float grad, struct adamw_constants k) {
  float g = grad * k.grad_scale;
  float mi = k.beta1 * *m + (1.0f - k.beta1) * g;
  float vi = k.beta2 * *v + (1.0f - k.beta2) * g * g;
  *m = mi;
  *v = vi;
  float mhat = mi / k.c1;
  float vhat = vi / k.c2;
  /* Decoupled decay: it shrinks the weight itself, outside the adaptive
   * scaling that an L2 term in the gradient would go through. */
  *p -= k.lr * (mhat / (sqrtf(vhat) + k.eps) + k.weight_decay * *p);
}

#endif
