/* The parser: the tree for each declaration, spans, expression precedence,
 * and recovery that reports every syntax error of a file. */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/suites.h"

static const char pipeline[] =
    "pipeline demo\n"
    "import \"std/models.pipe\"\n"
    "model tiny = gpt2 { layers = 4  heads = 4 }\n"
    "model base7 = load(\"ckpt/x\", state = instruct)\n"
    "data web = corpus(\"web/*.txt\") { min_chars = 200 }\n"
    "data both = mix(web = 70%, code = 30%,)\n"
    "stage base = pretrain(tiny) { data = web  optimizer = adamw(lr = 3e-3, warmup = 100) }\n"
    "stage r = grpo(base) { reward = verifier(match = r\"(\\d+)\", against = \"answer\")  group = 8 }\n"
    "order base < r < base\n"
    "assert r.reward >= 0.5 and not r.kl > 1 + 2 * 3\n";

static struct item *nth_item(struct parsed *p, int n) {
  struct item *it = p->tree->items;
  while (n-- > 0 && it) it = it->next;
  ck_assert_ptr_nonnull(it);
  return it;
}

START_TEST(every_declaration_parses) {
  struct parsed p;
  parse_text(&p, pipeline);
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 0);
  static const enum item_kind kinds[] = {ITEM_PIPELINE, ITEM_IMPORT, ITEM_MODEL, ITEM_MODEL, ITEM_DATA,
                                         ITEM_DATA,     ITEM_STAGE,  ITEM_STAGE, ITEM_ORDER, ITEM_ASSERT};
  int n = 0;
  for (struct item *it = p.tree->items; it; it = it->next, n++) ck_assert_int_eq(it->kind, kinds[n]);
  ck_assert_int_eq(n, 10);
  ck_assert(ident_is(&nth_item(&p, 0)->name, "demo"));
  ck_assert_str_eq(nth_item(&p, 1)->path->u.string.text, "std/models.pipe");
  parsed_free(&p);
}
END_TEST

START_TEST(models_and_data) {
  struct parsed p;
  parse_text(&p, pipeline);
  struct item *tiny = nth_item(&p, 2);
  ck_assert_int_eq(tiny->init->kind, EXPR_NAME);
  ck_assert(ident_is(&tiny->init->u.name, "gpt2"));
  ck_assert(tiny->block.present);
  ck_assert(ident_is(&tiny->block.entries->next->key, "heads"));
  struct item *base7 = nth_item(&p, 3);
  ck_assert_int_eq(base7->init->kind, EXPR_CALL);
  ck_assert(!base7->init->u.call.args->name.text); /* positional path */
  ck_assert(ident_is(&base7->init->u.call.args->next->name, "state"));
  ck_assert(!base7->block.present);
  struct item *both = nth_item(&p, 5);
  struct arg *a = both->init->u.call.args;
  ck_assert(ident_is(&a->name, "web"));
  ck_assert_int_eq(a->value->kind, EXPR_PERCENT);
  ck_assert_ptr_nonnull(a->next);
  ck_assert_ptr_null(a->next->next); /* the trailing comma adds nothing */
  parsed_free(&p);
}
END_TEST

START_TEST(stages_keep_kind_from_and_spans) {
  struct parsed p;
  parse_text(&p, pipeline);
  struct item *base = nth_item(&p, 6);
  ck_assert(ident_is(&base->name, "base"));
  ck_assert(ident_is(&base->kind_name, "pretrain"));
  ck_assert(ident_is(&base->from, "tiny"));
  ck_assert_uint_eq(base->span.line, 7);
  ck_assert_uint_eq(base->span.col, 1);
  ck_assert_uint_eq(base->from.span.col, 23);
  const char *text = p.sources.items[0]->text;
  ck_assert_int_eq(text[base->span.end - 1], '}');
  struct entry *opt = base->block.entries->next;
  ck_assert_int_eq(opt->value->kind, EXPR_CALL);
  ck_assert(ident_is(&opt->value->u.call.callee, "adamw"));
  ck_assert_double_eq(opt->value->u.call.args->value->u.number.value, 3e-3);
  parsed_free(&p);
}
END_TEST

START_TEST(order_chains) {
  struct parsed p;
  parse_text(&p, pipeline);
  struct name_list *n = nth_item(&p, 8)->order;
  ck_assert(ident_is(&n->name, "base"));
  ck_assert(ident_is(&n->next->name, "r"));
  ck_assert(ident_is(&n->next->next->name, "base"));
  ck_assert_ptr_null(n->next->next->next);
  parsed_free(&p);
}
END_TEST

START_TEST(assert_precedence) {
  struct parsed p;
  parse_text(&p, pipeline);
  /* r.reward >= 0.5 and not (r.kl > (1 + (2 * 3))) */
  struct expr *e = nth_item(&p, 9)->cond;
  ck_assert_int_eq(e->kind, EXPR_BINARY);
  ck_assert_int_eq(e->u.op.op, OP_AND);
  struct expr *ge = e->u.op.lhs;
  ck_assert_int_eq(ge->u.op.op, OP_GE);
  ck_assert_int_eq(ge->u.op.lhs->kind, EXPR_MEMBER);
  ck_assert(ident_is(&ge->u.op.lhs->u.member.member, "reward"));
  struct expr *not = e->u.op.rhs;
  ck_assert_int_eq(not->kind, EXPR_UNARY);
  ck_assert_int_eq(not->u.op.op, OP_NOT);
  struct expr *gt = not->u.op.rhs;
  ck_assert_int_eq(gt->u.op.op, OP_GT);
  ck_assert_int_eq(gt->u.op.rhs->u.op.op, OP_ADD);
  ck_assert_int_eq(gt->u.op.rhs->u.op.rhs->u.op.op, OP_MUL);
  parsed_free(&p);
}
END_TEST

START_TEST(every_syntax_error_is_reported) {
  struct parsed p;
  parse_text(&p,
             "model a = gpt2 { layers = }\n"      /* missing value */
             "stage b = sft(a { data = d }\n"     /* missing ')' */
             "data d = corpus(\"x\")\n"
             "order b <\n"                        /* unfinished chain */
             "model c = gpt2\n");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 3);
  ck_assert_uint_eq(p.tree->syntax_errors, 3);
  const struct diag *d = p.diags.head;
  ck_assert_uint_eq(d->span.line, 1);
  ck_assert_str_eq(d->message, "expected a value, found '}'");
  d = d->next;
  ck_assert_uint_eq(d->span.line, 2);
  ck_assert_str_eq(d->message, "expected ')', found '{'");
  d = d->next;
  ck_assert_uint_eq(d->span.line, 5);
  ck_assert_str_eq(d->message, "expected identifier, found 'model'");
  /* the declarations between the errors survive */
  int models = 0, data = 0;
  for (struct item *it = p.tree->items; it; it = it->next) {
    models += it->kind == ITEM_MODEL;
    data += it->kind == ITEM_DATA;
  }
  ck_assert_int_eq(data, 1);
  ck_assert_int_eq(models, 1);
  parsed_free(&p);
}
END_TEST

START_TEST(missing_brace_names_the_opener) {
  struct parsed p;
  parse_text(&p, "stage s = sft(m) {\n  data = d\n\nmodel m = gpt2\n");
  ck_assert_int_eq(p.diags.count[SEV_ERROR], 1);
  const struct diag *d = p.diags.head;
  ck_assert_ptr_nonnull(d->labels);
  ck_assert_uint_eq(d->labels->span.line, 1);
  ck_assert_uint_eq(d->labels->span.col, 18);
  ck_assert_str_eq(d->labels->text, "unclosed '{' opened here");
  parsed_free(&p);
}
END_TEST

START_TEST(errors_are_bounded) {
  char text[4096] = "";
  for (int i = 0; i < 40; i++) strcat(text, "model a = gpt2 { layers = }\n");
  struct parsed p;
  parse_text(&p, text);
  ck_assert_int_eq(p.diags.count[SEV_ERROR], PARSE_MAX_ERRORS);
  ck_assert_int_eq(p.diags.count[SEV_NOTE], 1);
  ck_assert_int_eq(p.diags.tail->code, N0005);
  parsed_free(&p);
}
END_TEST

START_TEST(deep_nesting_is_an_error_not_a_crash) {
  size_t n = 100000;
  char *text = malloc(n + 64);
  strcpy(text, "assert ");
  memset(text + 7, '(', n);
  text[7 + n] = '\0';
  struct parsed p;
  parse_text(&p, text);
  ck_assert_int_ge(p.diags.count[SEV_ERROR], 1);
  parsed_free(&p);
  free(text);
}
END_TEST

Suite *parser_suite(void) {
  Suite *s = suite_create("parser");
  TCase *tc = tcase_create("grammar");
  tcase_add_test(tc, every_declaration_parses);
  tcase_add_test(tc, models_and_data);
  tcase_add_test(tc, stages_keep_kind_from_and_spans);
  tcase_add_test(tc, order_chains);
  tcase_add_test(tc, assert_precedence);
  tcase_add_test(tc, every_syntax_error_is_reported);
  tcase_add_test(tc, missing_brace_names_the_opener);
  tcase_add_test(tc, errors_are_bounded);
  tcase_add_test(tc, deep_nesting_is_an_error_not_a_crash);
  suite_add_tcase(s, tc);
  return s;
}
