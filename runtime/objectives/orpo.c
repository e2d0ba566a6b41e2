/* ORPO, Odds Ratio Preference Optimization (Hong et al. 2024, "ORPO:
 * Monolithic Preference Optimization without Reference Model"); TRL
 * ORPOTrainer (odds_ratio_loss plus the chosen responses' NLL).
 *
 * Supervised fine-tuning on the chosen responses, plus a term that raises
 * the odds p/(1 - p) of the chosen response against those of the rejected
 * one, p being the geometric mean of the token probabilities (a = c/lc,
 * b = r/lr): log_odds = (a - log(1 - e^a)) - (b - log(1 - e^b)),
 * loss = sum(-c) / TOKEN_NORM - lambda sum(log sigmoid(log_odds)) / PAIR_NORM.
 * The NLL is linear in c (gradient -1/TOKEN_NORM). For the odds term,
 * d/da (a - log(1 - e^a)) = 1/(1 - e^a), which grows as p -> 1: the odds
 * saturate slower than the probability, so the push does not fade as the
 * chosen response becomes likely; with d/dx -log sigmoid(x) = -sigmoid(-x)
 * and da/dc = 1/lc, the chosen sum gets -lambda sigmoid(-log_odds) /
 * ((1 - e^a) lc PAIR_NORM), and the rejected sum the mirror with b, lr. */
#include "runtime/objectives/objectives.h"
#include "runtime/objectives/logistic.h"

#include <math.h>

/* log(1 - e^a) for a < 0: expm1 keeps the precision near 0 (p -> 1),
 * log1p far from it (Maechler 2012, "Accurately Computing log(1 - exp(-|a|))") */
static double log1m_exp(double a) { return a > -0.693147180559945309 ? log(-expm1(a)) : log1p(-exp(a)); }

double orpo_loss(const struct pair_logps *in, size_t n, double lambda, double token_norm, double pair_norm,
                 double *d_chosen, double *d_rejected, struct objective_stats *st) {
  double nll = 0, odds = 0;
  for (size_t i = 0; i < n; i++) {
    double lc = in->chosen_len[i], lr = in->rejected_len[i];
    double a = in->chosen[i] / lc, b = in->rejected[i] / lr;
    double log_odds = (a - log1m_exp(a)) - (b - log1m_exp(b));
    nll -= in->chosen[i];
    odds += log_sigmoid(log_odds);
    double g = -lambda * sigmoid(-log_odds) / pair_norm; /* d loss / d log_odds */
    /* d log_odds / da = 1 / (1 - e^a) = -1 / expm1(a) */
    d_chosen[i] = -1 / token_norm + g * (-1 / expm1(a)) / lc;
    d_rejected[i] = -g * (-1 / expm1(b)) / lr;
    if (st != NULL) {
      pair_stats_add(st, lambda * a, lambda * b);
      st->nll -= in->chosen[i];
      st->tokens += lc;
    }
  }
  return nll / token_norm - lambda * odds / pair_norm;
}
