/* placeholder */
#ifndef TRAINPIPE_TOKENIZER_H
#define TRAINPIPE_TOKENIZER_H
#endif
