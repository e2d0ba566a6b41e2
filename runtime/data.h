/* placeholder */
#ifndef TRAINPIPE_DATA_H
#define TRAINPIPE_DATA_H
#endif
