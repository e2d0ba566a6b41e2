/* placeholder */
#ifndef TRAINPIPE_TRAIN_H
#define TRAINPIPE_TRAIN_H
#endif
