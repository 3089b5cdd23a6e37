/*
 * QR codes as PNG data URIs (libqrencode + libpng), for otpauth:// URIs.
 * CPU work of about a millisecond: call it from the thread pool.
 *
 * Nothing here knows about nginx: plain C types, testable alone.
 */

#ifndef _UM_QR_H_INCLUDED_
#define _UM_QR_H_INCLUDED_

#include <stddef.h>


/*
 * "data:image/png;base64,..." of a QR code (error correction level M,
 * 8-bit mode) of text: a 1-bit grey PNG, 4 pixels per module and a quiet
 * zone of 4 modules.  Returns a malloc'd NUL-terminated string (the caller
 * frees it) and its length in len, or NULL.
 */
char *um_qr_png_data_uri(const char *text, size_t *len);


#endif /* _UM_QR_H_INCLUDED_ */
