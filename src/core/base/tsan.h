/*
 * tsan.h - telling ThreadSanitizer about orderings it cannot see.
 *
 * liburcu-cds is a separately built library that TSan does not instrument
 * (and _LGPL_SOURCE stays undefined here, so liburcu's inline versions are not
 * compiled into our code either). A wfcq enqueue is a release of everything
 * written into the node before it, a dequeue the matching acquire (liburcu
 * documents both); under TSan we say so on the object handed over. In other
 * builds these are empty.
 */
#ifndef MTS_TSAN_H
#define MTS_TSAN_H

#ifdef HAVE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)(p))
#define TSAN_ACQUIRE(p) ((void)(p))
#endif

#endif
