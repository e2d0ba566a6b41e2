/* placeholder */
#ifndef TRAINPIPE_OBJECTIVES_H
#define TRAINPIPE_OBJECTIVES_H
#endif
