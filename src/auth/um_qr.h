/*
 * QR codes as PNG data URIs (libqrencode + libpng), for otpauth:// URIs.
 * CPU work of 0.3 to 0.5 ms for an otpauth:// URI of 150 characters (a
 * data URI of about 900 bytes): call it from the thread pool.  Thread-safe.
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
