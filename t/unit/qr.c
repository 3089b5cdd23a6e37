/*
 * QR codes as PNG data URIs.  openssl base64 decodes the URI, zbarimg
 * (Debian's "zbar-tools") reads the code back and must print exactly the
 * text, file(1) names the image; libpng's reader looks at the pixels: the
 * quiet zone white, the finder patterns dark.
 */

/* unit-sources: src/auth/um_qr.c */
/* unit-cflags: -pthread */
/* unit-libs: -lqrencode -lpng -pthread */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "auth/um_qr.h"
#include "tap.h"

#define PREFIX   "data:image/png;base64,"
#define THREADS  4
#define ROUNDS   25

#define skip(n, why)                                                        \
    do {                                                                    \
        int  skip_i;                                                        \
        for (skip_i = 0; skip_i < (n); skip_i++) {                          \
            printf("ok %d # skip %s\n", ++tap_n, why);                      \
        }                                                                   \
    } while (0)


typedef struct {
    const char  *text;
    const char  *want;
    int          same;
} job_t;


static void check_code(const char *name, const char *text);
static int have(const char *cmd);
static int run_out(const char *cmd, char *out, size_t size);
static unsigned char *read_file(const char *path, size_t *len);
static int write_file(const char *path, const void *p, size_t n);
static int check_pixels(const unsigned char *png, size_t len, int *modules);
static void *render(void *arg);


static char  dir[256];
static int   have_zbarimg;


int
main(void)
{
    int          i, same;
    char         cmd[400], *uri, *long_text;
    size_t       len;
    job_t        jobs[THREADS];
    pthread_t    tid[THREADS];
    const char  *tmp;
    const char  *typical =
        "otpauth://totp/Example%20Co:a%20b%2Bc%40example.com"
        "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Co"
        "&algorithm=SHA1&digits=6&period=30";
    const char  *long_uri =
        "otpauth://totp/The%20Very%20Long%20Name%20of%20an%20Organization"
        "%20Ltd:firstname.middlename.lastname%2Bsome-tag"
        "%40subdomain.example-company.com"
        "?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        "&issuer=The%20Very%20Long%20Name%20of%20an%20Organization%20Ltd"
        "&algorithm=SHA1&digits=6&period=30&image=https%3A%2F%2Fexample.com"
        "%2Flogo.png";

    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/um-qr-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }

    have_zbarimg = have("zbarimg");

    printf("# typical URI: %zu characters, long: %zu\n", strlen(typical),
           strlen(long_uri));

    check_code("typical", typical);
    check_code("long", long_uri);
    check_code("short", "x");

    /* beyond version 40 at level M (2331 bytes): no code, no crash */

    long_text = malloc(3001);
    if (long_text == NULL) {
        ok(0, "malloc");
        return done_testing();
    }

    memset(long_text, 'a', 3000);
    long_text[3000] = '\0';
    len = 12345;
    uri = um_qr_png_data_uri(long_text, &len);
    ok(uri == NULL, "3000 bytes: too long for a QR code, NULL");
    free(uri);
    free(long_text);

    /* no shared state: threads at once give what one thread gives */

    uri = um_qr_png_data_uri(typical, &len);
    if (uri == NULL) {
        ok(0, "reference rendering");
        return done_testing();
    }

    for (i = 0; i < THREADS; i++) {
        jobs[i].text = i % 2 ? typical : long_uri;
        jobs[i].want = i % 2 ? uri : NULL;
        jobs[i].same = 0;
    }

    same = 1;

    for (i = 0; i < THREADS; i++) {
        if (pthread_create(&tid[i], NULL, render, &jobs[i]) != 0) {
            same = 0;
            jobs[i].text = NULL;
        }
    }

    for (i = 0; i < THREADS; i++) {
        if (jobs[i].text != NULL) {
            pthread_join(tid[i], NULL);
            same = same && jobs[i].same;
        }
    }

    ok(same, "%d threads, %d renderings each: each the same as alone",
       THREADS, ROUNDS);

    free(uri);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ok(system(cmd) == 0, "scratch removed");

    return done_testing();
}


static void
check_code(const char *name, const char *text)
{
    int             modules;
    char           *uri, path[300], b64[300], cmd[1000], out[2048];
    char            want[2048];
    size_t          len, png_len;
    unsigned char  *png;

    len = 0;
    uri = um_qr_png_data_uri(text, &len);

    ok(uri != NULL && len == strlen(uri), "%s: a data URI of %zu bytes",
       name, len);

    if (uri == NULL) {
        skip(6, "no URI");
        return;
    }

    ok(strncmp(uri, PREFIX, sizeof(PREFIX) - 1) == 0,
       "%s: starts with " PREFIX, name);

    snprintf(b64, sizeof(b64), "%s/%s.b64", dir, name);
    snprintf(path, sizeof(path), "%s/%s.png", dir, name);
    snprintf(cmd, sizeof(cmd), "openssl base64 -d -A -in '%s' -out '%s'",
             b64, path);

    png = NULL;
    png_len = 0;

    if (write_file(b64, uri + sizeof(PREFIX) - 1,
                   len - (sizeof(PREFIX) - 1)) == 0
        && system(cmd) == 0)
    {
        png = read_file(path, &png_len);
    }

    free(uri);

    ok(png != NULL && png_len > 8
       && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0,
       "%s: openssl base64 decodes it to %zu bytes with the PNG signature",
       name, png_len);

    snprintf(cmd, sizeof(cmd), "file -b '%s'", path);
    ok(run_out(cmd, out, sizeof(out)) == 0
       && strstr(out, "PNG image data") != NULL
       && strstr(out, "1-bit grayscale") != NULL,
       "%s: file says %.*s", name, (int) strcspn(out, "\n"), out);

    modules = 0;
    ok(png != NULL && check_pixels(png, png_len, &modules) == 0,
       "%s: %d modules, 4 px each, quiet zone white, finders dark", name,
       modules);

    free(png);

    if (!have_zbarimg) {
        skip(1, "no zbarimg");
        return;
    }

    snprintf(cmd, sizeof(cmd), "zbarimg --nodbus --raw -q '%s'", path);
    snprintf(want, sizeof(want), "%s\n", text);

    ok(run_out(cmd, out, sizeof(out)) == 0 && strcmp(out, want) == 0,
       "%s: zbarimg reads back exactly the text", name);
}


/*
 * The pixels, through libpng's reader: a square of (n + 8) * 4 pixels for
 * an n-module code (n = 17 + 4 * version), 16 white pixels around, and the
 * three 7-module finder patterns dark at their corners: outer ring dark,
 * next ring light, 3x3 centre dark.
 */
static int
check_pixels(const unsigned char *png, size_t len, int *modules)
{
    int            n, x, y, fx, fy, f, dx, dy, ring, dark, rc;
    size_t         size;
    png_image      image;
    unsigned char *px;

    memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;

    if (!png_image_begin_read_from_memory(&image, png, len)) {
        return -1;
    }

    image.format = PNG_FORMAT_GRAY;
    size = PNG_IMAGE_SIZE(image);

    px = malloc(size);
    if (px == NULL) {
        png_image_free(&image);
        return -1;
    }

    if (!png_image_finish_read(&image, NULL, px, 0, NULL)) {
        free(px);
        return -1;
    }

    rc = -1;

    if (image.width != image.height || image.width % 4 != 0) {
        goto done;
    }

    n = (int) image.width / 4 - 8;
    *modules = n;

    if (n < 21 || n > 177 || (n - 17) % 4 != 0) {
        goto done;
    }

    for (y = 0; y < (int) image.height; y++) {
        for (x = 0; x < (int) image.width; x++) {
            if (px[y * image.width + x] != 0 && px[y * image.width + x] != 255)
            {
                goto done;
            }

            if ((x < 16 || y < 16 || x >= 16 + 4 * n || y >= 16 + 4 * n)
                && px[y * image.width + x] != 255)
            {
                goto done;
            }
        }
    }

    for (f = 0; f < 3; f++) {
        fx = (f == 1) ? n - 7 : 0;
        fy = (f == 2) ? n - 7 : 0;

        for (dy = 0; dy < 7; dy++) {
            for (dx = 0; dx < 7; dx++) {
                ring = dx < dy ? dx : dy;
                ring = 6 - dx < ring ? 6 - dx : ring;
                ring = 6 - dy < ring ? 6 - dy : ring;
                dark = (ring != 1);

                /* every pixel of the module */
                for (y = 0; y < 4; y++) {
                    for (x = 0; x < 4; x++) {
                        if ((px[(16 + 4 * (fy + dy) + y) * image.width
                                + 16 + 4 * (fx + dx) + x] == 0) != dark)
                        {
                            goto done;
                        }
                    }
                }
            }
        }
    }

    rc = 0;

done:

    free(px);

    return rc;
}


static void *
render(void *arg)
{
    int     i;
    char   *uri, *first;
    size_t  len;
    job_t  *job;

    job = arg;
    job->same = 1;
    first = NULL;

    for (i = 0; i < ROUNDS; i++) {
        uri = um_qr_png_data_uri(job->text, &len);

        if (uri == NULL) {
            job->same = 0;
            continue;
        }

        if (job->want != NULL) {
            job->same = job->same && strcmp(uri, job->want) == 0;
            free(uri);

        } else if (first == NULL) {
            first = uri;

        } else {
            job->same = job->same && strcmp(uri, first) == 0;
            free(uri);
        }
    }

    free(first);

    return NULL;
}


static int
have(const char *cmd)
{
    char  buf[200];

    snprintf(buf, sizeof(buf), "command -v %s >/dev/null 2>&1", cmd);

    return system(buf) == 0;
}


/* a command's whole standard output; 0 when it exits 0 */
static int
run_out(const char *cmd, char *out, size_t size)
{
    FILE    *f;
    size_t   n;

    f = popen(cmd, "r");
    if (f == NULL) {
        out[0] = '\0';
        return -1;
    }

    n = fread(out, 1, size - 1, f);
    out[n] = '\0';

    return pclose(f) == 0 ? 0 : -1;
}


static unsigned char *
read_file(const char *path, size_t *len)
{
    FILE           *f;
    size_t          n;
    unsigned char  *p;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    p = malloc(65536);
    if (p == NULL) {
        fclose(f);
        return NULL;
    }

    n = fread(p, 1, 65536, f);
    fclose(f);

    *len = n;

    return p;
}


static int
write_file(const char *path, const void *p, size_t n)
{
    FILE  *f;

    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }

    if (fwrite(p, 1, n, f) != n) {
        fclose(f);
        return -1;
    }

    return fclose(f) == 0 ? 0 : -1;
}
