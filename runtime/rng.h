/* A small deterministic random number generator (splitmix64), the same
 * stream on every machine and thread count: initialisation, shuffling,
 * mixing and sampling draw from it. State is a value; no globals. */
#ifndef TRAINPIPE_RNG_H
#define TRAINPIPE_RNG_H

#include <stdint.h>

struct rng {
  uint64_t state;
};

static inline struct rng rng_seed(uint64_t seed) { return (struct rng){seed ^ 0x9E3779B97F4A7C15ull}; }

static inline uint64_t rng_next(struct rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static inline double rng_uniform(struct rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Uniform integer in [0, n). */
static inline uint64_t rng_below(struct rng *r, uint64_t n) { return n ? rng_next(r) % n : 0; }

/* Standard normal (Box-Muller; one of the pair is dropped, so that a draw
 * is a pure function of the stream position). */
double rng_normal(struct rng *r);

#endif
