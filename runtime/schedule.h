/* placeholder */
#ifndef TRAINPIPE_SCHEDULE_H
#define TRAINPIPE_SCHEDULE_H
#endif
