/*
 * QR code → PNG in memory → base64 data URI.  Runs on thread-pool threads:
 * no static state, every allocation freed on every path, and libpng's
 * errors come back by longjmp to the one function that set the jump.
 */

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <png.h>
#include <qrencode.h>

#include "um_qr.h"


#define UM_QR_SCALE        4        /* pixels per module */
#define UM_QR_QUIET        4        /* modules of white around the code */
#define UM_QR_PREFIX       "data:image/png;base64,"
#define UM_QR_PREFIX_LEN   (sizeof(UM_QR_PREFIX) - 1)

/* a typical otpauth:// code is a PNG well under 1 KB */
#define UM_QR_PNG_START    1024


typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          size;
} um_qr_buf_t;


static int um_qr_png(const QRcode *qr, unsigned char *row, um_qr_buf_t *out);
static void um_qr_row(const QRcode *qr, int y, unsigned char *row,
    size_t row_len);
static void um_qr_png_write(png_structp png, png_bytep data, size_t len);
static void um_qr_png_flush(png_structp png);
static void um_qr_png_error(png_structp png, png_const_charp msg);
static void um_qr_png_warning(png_structp png, png_const_charp msg);


char *
um_qr_png_data_uri(const char *text, size_t *len)
{
    int             px;
    char           *uri;
    size_t          n;
    QRcode         *qr;
    um_qr_buf_t     png;
    unsigned char  *row;

    qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL) {
        return NULL;
    }

    uri = NULL;
    row = NULL;
    png.data = NULL;
    png.len = 0;
    png.size = 0;

    px = (qr->width + 2 * UM_QR_QUIET) * UM_QR_SCALE;

    row = malloc((px + 7) / 8);
    if (row == NULL) {
        goto done;
    }

    if (um_qr_png(qr, row, &png) != 0) {
        goto done;
    }

    /* EVP_EncodeBlock: 4 characters per 3 bytes, padded, and a NUL */
    uri = malloc(UM_QR_PREFIX_LEN + (png.len + 2) / 3 * 4 + 1);
    if (uri == NULL) {
        goto done;
    }

    memcpy(uri, UM_QR_PREFIX, UM_QR_PREFIX_LEN);
    n = (size_t) EVP_EncodeBlock((unsigned char *) uri + UM_QR_PREFIX_LEN,
                                 png.data, (int) png.len);

    *len = UM_QR_PREFIX_LEN + n;

done:

    free(png.data);
    free(row);
    QRcode_free(qr);

    return uri;
}


/*
 * The PNG of the code into out.  Only libpng calls and locals that are not
 * changed after setjmp() live here: what must survive a longjmp (the
 * buffer, the row) belongs to the caller.
 */
static int
um_qr_png(const QRcode *qr, unsigned char *row, um_qr_buf_t *out)
{
    int          px, y, i;
    size_t       row_len;
    png_infop    info;
    png_structp  png;

    px = (qr->width + 2 * UM_QR_QUIET) * UM_QR_SCALE;
    row_len = (px + 7) / 8;

    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                  um_qr_png_error, um_qr_png_warning);
    if (png == NULL) {
        return -1;
    }

    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        return -1;
    }

    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }

    png_set_write_fn(png, out, um_qr_png_write, um_qr_png_flush);
    png_set_IHDR(png, info, px, px, 1, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);

    for (y = -UM_QR_QUIET; y < qr->width + UM_QR_QUIET; y++) {
        um_qr_row(qr, y, row, row_len);

        for (i = 0; i < UM_QR_SCALE; i++) {
            png_write_row(png, row);
        }
    }

    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);

    return 0;
}


/*
 * One row of pixels for module row y (negative or past the width: quiet
 * zone).  In 1-bit grey, 1 is white; libqrencode marks a dark module by
 * bit 0 of its byte.
 */
static void
um_qr_row(const QRcode *qr, int y, unsigned char *row, size_t row_len)
{
    int  x, p, i;

    memset(row, 0xff, row_len);

    if (y < 0 || y >= qr->width) {
        return;
    }

    for (x = 0; x < qr->width; x++) {
        if (!(qr->data[y * qr->width + x] & 1)) {
            continue;
        }

        p = (x + UM_QR_QUIET) * UM_QR_SCALE;

        for (i = 0; i < UM_QR_SCALE; i++, p++) {
            row[p / 8] &= (unsigned char) ~(0x80 >> (p % 8));
        }
    }
}


static void
um_qr_png_write(png_structp png, png_bytep data, size_t len)
{
    size_t          size;
    um_qr_buf_t    *out;
    unsigned char  *p;

    out = png_get_io_ptr(png);

    if (len > out->size - out->len) {
        size = out->size ? out->size : UM_QR_PNG_START;

        while (len > size - out->len) {
            size *= 2;
        }

        p = realloc(out->data, size);
        if (p == NULL) {
            png_error(png, "out of memory");
        }

        out->data = p;
        out->size = size;
    }

    memcpy(out->data + out->len, data, len);
    out->len += len;
}


static void
um_qr_png_flush(png_structp png)
{
    (void) png;
}


/* libpng's default handlers print to stderr; ours only jump back */
static void
um_qr_png_error(png_structp png, png_const_charp msg)
{
    (void) msg;

    png_longjmp(png, 1);
}


static void
um_qr_png_warning(png_structp png, png_const_charp msg)
{
    (void) png;
    (void) msg;
}
