/* The planner: parameter counts and FLOPs against values worked out by hand,
 * execution order, effective settings, and the YAML form. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "interp/plan.h"
#include "tests/unit/suites.h"

static json_t *plan_of(struct program *prog, const char *text, const char *device) {
  check_text(prog, text);
  ck_assert_uint_eq(prog->diags.count[SEV_ERROR], 0);
  return plan_build(prog, &(struct plan_options){.device = device, .utilization = NAN, .data = false});
}

static json_t *stage_at(json_t *plan, size_t i) { return json_array_get(json_object_get(plan, "stages"), i); }

static double number_at(json_t *obj, const char *a, const char *b) {
  json_t *v = json_object_get(obj, a);
  if (b) v = json_object_get(v, b);
  ck_assert_msg(json_is_number(v), "no number at %s.%s", a, b ? b : "");
  return json_number_value(v);
}

static void assert_near(double got, double want) {
  ck_assert_msg(fabs(got - want) <= 1e-9 * fabs(want), "got %.17g, want %.17g", got, want);
}

/* GPT-2 small, as Radford et al. (2019) give it: 124M parameters.
 *   token embedding 50257 * 768 = 38,597,376 (the LM head is tied to it)
 *   positions        1024 * 768 =    786,432
 *   a block: attention 768*2304 + 2304 + 768*768 + 768 = 2,362,368,
 *            MLP 768*3072 + 3072 + 3072*768 + 768 = 4,722,432,
 *            two LayerNorms 4 * 768 = 3,072: 7,087,872, times 12 = 85,054,464
 *   final LayerNorm 1,536
 *   total 124,439,808
 * One billion tokens of pre-training at context 1024:
 *   N = 124,439,808 - 786,432 = 123,653,376 (position embeddings are no matmul)
 *   6ND = 7.41920256e17; attention 6 * 12 * 1024 * 768 * 1e9 = 5.6623104e16
 *   total 7.9854336e17 */
START_TEST(gpt2_small) {
  struct program prog;
  json_t *plan = plan_of(&prog,
                         "model m = gpt2 { layers = 12  heads = 12  width = 768  context = 1024  vocab = 50257 }\n"
                         "data web = corpus(\"web/*.txt\")\n"
                         "stage base = pretrain(m) { data = web  tokens = 1B  batch = 512 }\n",
                         "h100");
  json_t *s = stage_at(plan, 0);
  ck_assert_double_eq(number_at(s, "model", "parameters"), 124439808);
  assert_near(number_at(json_object_get(s, "cost"), "flops", "total"), 7.9854336e17);
  assert_near(number_at(json_object_get(s, "cost"), "flops", "training"), 7.9854336e17);
  ck_assert_double_eq(number_at(s, "tokens", NULL), 1e9);
  assert_near(number_at(s, "tokens_per_parameter", NULL), 1e9 / 124439808);
  /* steps: 1e9 / (512 * 1024) = 1907.3..., rounded up */
  ck_assert_double_eq(number_at(json_object_get(s, "settings"), "steps", "value"), 1908);
  /* time at the H100's 989 TFLOP/s and 40% */
  assert_near(number_at(json_object_get(s, "cost"), "seconds", NULL), 7.9854336e17 / (989e12 * 0.4));
  /* memory: 16 bytes a parameter, and one micro-batch of 512 sequences:
   * 4 * (12 * (16*512*1024*768 + 2*512*12*1024^2) + 512*1024*50257) */
  json_t *mem = json_object_get(json_object_get(s, "cost"), "memory");
  ck_assert_double_eq(number_at(mem, "adamw", NULL), 8.0 * 124439808);
  assert_near(number_at(mem, "activations", NULL),
              4 * (12 * (16.0 * 512 * 1024 * 768 + 2.0 * 512 * 12 * 1024 * 1024) + 512.0 * 1024 * 50257));
  json_decref(plan);
  checked_free(&prog);
}
END_TEST

/* A tiny byte-level model: layers 4, heads 4, width 128, context 256,
 * vocab 261 (256 bytes and 5 special tokens).
 *   embeddings 261*128 + 256*128 = 33,408 + 32,768 = 66,176
 *   a block 12*128^2 + 13*128 = 198,272, times 4 = 793,088; final LN 256
 *   total 859,520; N = 859,520 - 32,768 = 826,752
 * 2M tokens: 6ND = 9.921024e12, attention 6*4*256*128*2e6 = 1.572864e12,
 * total 1.1493888e13. */
START_TEST(tiny_pretrain) {
  struct program prog;
  json_t *plan = plan_of(&prog,
                         "model tiny = gpt2 { layers = 4  heads = 4  width = 128  context = 256  tokenizer = bytes }\n"
                         "data web = corpus(\"web/*.txt\")\n"
                         "stage base = pretrain(tiny) { data = web  tokens = 2M }\n",
                         "cpu");
  json_t *s = stage_at(plan, 0);
  ck_assert_double_eq(number_at(s, "model", "parameters"), 859520);
  assert_near(number_at(json_object_get(s, "cost"), "flops", "total"), 1.1493888e13);
  /* defaults filled in and marked */
  json_t *batch = json_object_get(json_object_get(s, "settings"), "batch");
  ck_assert_str_eq(json_string_value(json_object_get(batch, "source")), "default");
  ck_assert_double_eq(json_number_value(json_object_get(batch, "value")), 8);
  json_t *lr = json_object_get(json_object_get(s, "optimizer"), "lr");
  ck_assert_str_eq(json_string_value(json_object_get(lr, "source")), "default");
  ck_assert_double_eq(json_number_value(json_object_get(lr, "value")), 6e-4); /* the pretrain row's */
  json_t *context = json_object_get(json_object_get(s, "settings"), "context");
  ck_assert_str_eq(json_string_value(json_object_get(context, "source")), "derived");
  ck_assert_double_eq(json_number_value(json_object_get(context, "value")), 256);
  json_decref(plan);
  checked_free(&prog);
}
END_TEST

/* A second tiny shape, BPE, through SFT and DPO: the DPO stage trains on
 * pairs and runs the frozen reference forward once over the data.
 *   layers 2, heads 2, width 64, context 128, vocab 50257
 *   embeddings 50257*64 + 128*64 = 3,216,448 + 8,192; blocks 2 * (12*64^2 +
 *   13*64) = 2 * 49,984 = 99,968; final LN 128: total 3,324,736
 *   N = 3,324,736 - 8,192 = 3,316,544 */
START_TEST(tiny_bpe_preferences) {
  struct program prog;
  json_t *plan = plan_of(&prog,
                         "model small = gpt2 { layers = 2  heads = 2  width = 64  context = 128  tokenizer = bpe }\n"
                         "data web = corpus(\"web/*.txt\")\n"
                         "data chat = demonstrations(\"chat.jsonl\")\n"
                         "data prefs = preferences(\"prefs.jsonl\")\n"
                         "stage base = pretrain(small) { data = web  tokens = 60M }\n"
                         "stage tuned = sft(base) { data = chat  steps = 10  batch = 4 }\n"
                         "stage aligned = dpo(tuned) { data = prefs  reference = frozen(tuned)  steps = 5  batch = 2 }\n"
                         "order tuned < aligned\n",
                         "a100");
  ck_assert_double_eq(number_at(stage_at(plan, 0), "model", "parameters"), 3324736);
  assert_near(number_at(json_object_get(stage_at(plan, 0), "cost"), "flops", "total"),
              (6.0 * 3316544 + 6.0 * 2 * 128 * 64) * 60e6);
  json_t *dpo = stage_at(plan, 2);
  ck_assert_str_eq(json_string_value(json_object_get(dpo, "name")), "aligned");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(dpo, "from"), "state")), "instruct");
  ck_assert_str_eq(json_string_value(json_object_get(dpo, "produces")), "aligned");
  json_t *mem = json_object_get(json_object_get(dpo, "cost"), "memory");
  ck_assert_double_eq(number_at(mem, "reference", NULL), 4.0 * 3324736); /* weights only */
  ck_assert_ptr_nonnull(json_object_get(json_object_get(json_object_get(dpo, "cost"), "flops"), "reference"));
  json_decref(plan);
  checked_free(&prog);
}
END_TEST

/* Stages run in a topological order of lineage, references, rewards and
 * order constraints, in source order where nothing constrains them; the
 * main file's stages only, with what they need. */
START_TEST(execution_order) {
  struct program prog;
  json_t *plan = plan_of(&prog,
                         "model m = gpt2 { layers = 2  heads = 2  width = 64  context = 128 }\n"
                         "data web = corpus(\"web/*.txt\")\n"
                         "data chat = demonstrations(\"chat.jsonl\")\n"
                         "data prefs = preferences(\"prefs.jsonl\")\n"
                         "data qs = prompts(\"qs.jsonl\")\n"
                         "stage rl = ppo(sft1) { prompts = qs  reward = judge  reference = frozen(sft1) }\n"
                         "stage judge = reward_model(sft2) { data = prefs }\n"
                         "stage sft2 = sft(base) { data = chat }\n"
                         "stage sft1 = sft(base) { data = chat }\n"
                         "stage base = pretrain(m) { data = web  tokens = 1M }\n"
                         "order sft1 < sft2\n",
                         "cpu");
  static const char *const want[] = {"base", "sft1", "sft2", "judge", "rl"};
  json_t *stages = json_object_get(plan, "stages");
  ck_assert_uint_eq(json_array_size(stages), 5);
  for (size_t i = 0; i < 5; i++)
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(stages, i), "name")), want[i]);
  json_t *rl = json_array_get(stages, 4);
  ck_assert_ptr_nonnull(json_object_get(json_object_get(json_object_get(rl, "cost"), "flops"), "generation"));
  ck_assert_ptr_nonnull(json_object_get(json_object_get(json_object_get(rl, "cost"), "flops"), "reward_model"));
  json_decref(plan);
  checked_free(&prog);
}
END_TEST

/* The YAML form is a well-formed document with the plan's keys. */
START_TEST(yaml_form) {
  struct program prog;
  json_t *plan = plan_of(&prog,
                         "pipeline p\n"
                         "model m = gpt2 { layers = 2  heads = 2  width = 64  context = 128 }\n"
                         "data web = corpus(\"web/*.txt\")\n"
                         "stage base = pretrain(m) { data = web  tokens = 1M }\n",
                         "cpu");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ck_assert(plan_print_yaml(f, plan));
  fclose(f);
  yaml_parser_t parser;
  yaml_event_t ev;
  ck_assert(yaml_parser_initialize(&parser));
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  size_t scalars = 0;
  bool saw_stages = false, done = false;
  while (!done) {
    ck_assert_msg(yaml_parser_parse(&parser, &ev), "YAML does not parse: %s", parser.problem);
    if (ev.type == YAML_SCALAR_EVENT) {
      scalars++;
      saw_stages |= strcmp((const char *)ev.data.scalar.value, "stages") == 0;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  ck_assert(saw_stages);
  ck_assert_uint_gt(scalars, 50);
  free(text);
  json_decref(plan);
  checked_free(&prog);
}
END_TEST

Suite *plan_suite(void) {
  Suite *s = suite_create("plan");
  TCase *t = tcase_create("plan");
  tcase_add_test(t, gpt2_small);
  tcase_add_test(t, tiny_pretrain);
  tcase_add_test(t, tiny_bpe_preferences);
  tcase_add_test(t, execution_order);
  tcase_add_test(t, yaml_form);
  suite_add_tcase(s, t);
  return s;
}
