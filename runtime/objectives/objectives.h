/* Objectives: each turns the per-token log-probabilities of a micro-batch
 * into its share of the loss and the gradient d loss / d logp, on the host,
 * the same for every backend (DESIGN.md, "The runtime").
 *
 * Gradient accumulation normalises by the tokens counted in the whole
 * optimiser step, not by micro-batches: every objective takes NORM, the
 * counted tokens of the step, so that micro-batches of different sizes
 * weigh by their tokens and the sum of the returned shares is the step's
 * mean loss. */
#ifndef TRAINPIPE_OBJECTIVES_H
#define TRAINPIPE_OBJECTIVES_H

#include <stddef.h>
#include <stdint.h>

/* Next-token prediction on every token whose target is >= 0 (pre-training,
 * mid-training): returns -sum(logp) / norm over those tokens and writes
 * dlogp (-1 / norm there, 0 elsewhere). */
double next_token_loss(const float *logp, const int32_t *targets, size_t n, double norm, float *dlogp);

/* Masked next-token prediction (SFT): the same over the tokens whose weight
 * is 1 (the response tokens, the end-of-turn token included); prompt
 * positions get exactly zero gradient. */
double masked_next_token_loss(const float *logp, const float *weights, size_t n, double norm, float *dlogp);

#endif
