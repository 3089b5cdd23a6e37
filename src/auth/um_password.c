/*
 * Password hashing (argon2id, PHC strings) and the NIST SP 800-63B
 * acceptance policy with a blocklist of common passwords.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/rand.h>

#include "um_password.h"
#include "http/um_validate.h"


#define UM_PW_SALT_LEN      16
#define UM_PW_HASH_LEN      32

/*
 * Bounds on what a stored PHC string may ask of verify: a tampered or
 * corrupt row must not make one login allocate gigabytes or spin for
 * minutes.  Far above any sane configuration.
 */
#define UM_PW_VERIFY_M_MAX  (1024 * 1024)           /* KiB: 1 GiB */
#define UM_PW_VERIFY_T_MAX  64
#define UM_PW_VERIFY_P_MAX  64
#define UM_PW_B64_MAX       86                      /* 64 bytes */

/* the offsets in the hash set are 32 bits, with 0 meaning "free" */
#define UM_PW_FILE_MAX      (256 * 1024 * 1024)

/* evaluates c more than once */
#define um_pw_lower(c)      ((c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c))


/* the parts of "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" */
typedef struct {
    uint32_t     m;
    uint32_t     t;
    uint32_t     p;
    size_t       salt_bytes;
    size_t       hash_bytes;
} um_pw_phc_t;

typedef struct {
    uint32_t     offset;                /* of the word in the arena, + 1 */
    uint32_t     hash;
} um_pw_slot_t;

struct um_pw_blocklist_s {
    char          *arena;               /* the file; words end with NUL */
    um_pw_slot_t  *slots;
    size_t         mask;                /* slots - 1, slots a power of 2 */
    size_t         nwords;
    size_t         max_len;             /* longer words are not in it */
};


static int um_pw_phc_parse(const char *phc, um_pw_phc_t *h);
static const char *um_pw_parse_u32(const char *s, uint32_t *v);
static const char *um_pw_parse_b64(const char *s, size_t *bytes);
static char *um_pw_read_file(const char *path, size_t *size, char *err,
    size_t errlen);
static void um_pw_blocklist_add(um_pw_blocklist_t *bl, char *word,
    size_t len);
static uint32_t um_pw_fnv1a(const char *word, size_t len);
static uint32_t um_pw_next(const unsigned char **p);
static int um_pw_has_control(const unsigned char *p, size_t len);
static int um_pw_is_common(const unsigned char *p, size_t len,
    const um_pw_blocklist_t *bl);
static int um_pw_is_repetitive(const unsigned char *p, size_t len);
static int um_pw_is_sequential(const unsigned char *p, size_t len,
    size_t n);
static int um_pw_along(const unsigned char *p, size_t len, const char *row);
static int um_pw_has_identity(const unsigned char *p, size_t len,
    const char *email, const char *username);
static int um_pw_equal(const unsigned char *p, size_t len, const char *s,
    size_t slen);
static int um_pw_contains(const unsigned char *p, size_t len,
    const char *s, size_t slen);
static size_t um_pw_chars(const char *s, size_t len);


int
um_password_hash(const char *pw, size_t len,
    const um_argon2_params_t *params, char *out, size_t outlen)
{
    int                 rc;
    unsigned char       salt[UM_PW_SALT_LEN];
    um_argon2_params_t  owasp = UM_ARGON2_OWASP;

    if (params == NULL) {
        params = &owasp;
    }

    if (out == NULL || outlen == 0) {
        return -1;
    }

    out[0] = '\0';

    if ((uint64_t) len > ARGON2_MAX_PWD_LENGTH) {
        return -1;
    }

    if (outlen < argon2_encodedlen(params->t, params->m_kib, params->p,
                                   UM_PW_SALT_LEN, UM_PW_HASH_LEN,
                                   Argon2_id))
    {
        return -1;
    }

    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        return -1;
    }

    rc = argon2_hash(params->t, params->m_kib, params->p, pw, len,
                     salt, sizeof(salt), NULL, UM_PW_HASH_LEN, out, outlen,
                     Argon2_id, ARGON2_VERSION_13);

    if (rc != ARGON2_OK) {
        out[0] = '\0';
        return -1;
    }

    return 0;
}


int
um_password_verify(const char *pw, size_t len, const char *phc)
{
    int          rc;
    um_pw_phc_t  h;

    if (phc == NULL || um_pw_phc_parse(phc, &h) != 0) {
        return -1;
    }

    if (h.m > UM_PW_VERIFY_M_MAX || h.t > UM_PW_VERIFY_T_MAX
        || h.p > UM_PW_VERIFY_P_MAX || (uint64_t) len > ARGON2_MAX_PWD_LENGTH)
    {
        return -1;
    }

    /* decodes the string again, hashes, and compares in constant time */
    rc = argon2_verify(phc, pw, len, Argon2_id);

    if (rc == ARGON2_OK) {
        return 1;
    }

    if (rc == ARGON2_VERIFY_MISMATCH) {
        return 0;
    }

    return -1;
}


int
um_password_needs_rehash(const char *phc, const um_argon2_params_t *params)
{
    um_pw_phc_t         h;
    um_argon2_params_t  owasp = UM_ARGON2_OWASP;

    if (params == NULL) {
        params = &owasp;
    }

    if (phc == NULL || um_pw_phc_parse(phc, &h) != 0) {
        return 1;
    }

    return h.m != params->m_kib || h.t != params->t || h.p != params->p
           || h.salt_bytes < UM_PW_SALT_LEN || h.hash_bytes != UM_PW_HASH_LEN;
}


/*
 * Only the form this module writes is accepted: argon2id, version 1.3
 * ("v=19", not the pre-1.3 form without it), the parameters in the order
 * m, t, p, no keyid or data fields, unpadded base64.
 */
static int
um_pw_phc_parse(const char *phc, um_pw_phc_t *h)
{
    static const char  prefix[] = "$argon2id$v=19$m=";

    const char  *s;

    if (strncmp(phc, prefix, sizeof(prefix) - 1) != 0) {
        return -1;
    }

    s = um_pw_parse_u32(phc + sizeof(prefix) - 1, &h->m);

    if (s == NULL || strncmp(s, ",t=", 3) != 0) {
        return -1;
    }

    s = um_pw_parse_u32(s + 3, &h->t);

    if (s == NULL || strncmp(s, ",p=", 3) != 0) {
        return -1;
    }

    s = um_pw_parse_u32(s + 3, &h->p);

    if (s == NULL || *s != '$') {
        return -1;
    }

    s = um_pw_parse_b64(s + 1, &h->salt_bytes);

    if (s == NULL || *s != '$') {
        return -1;
    }

    s = um_pw_parse_b64(s + 1, &h->hash_bytes);

    if (s == NULL || *s != '\0') {
        return -1;
    }

    /* argon2's own minimums: 8 bytes of salt, 4 of hash */
    if (h->m == 0 || h->t == 0 || h->p == 0 || h->salt_bytes < 8
        || h->hash_bytes < 4)
    {
        return -1;
    }

    return 0;
}


/* a decimal without leading zeros, as argon2 writes them */
static const char *
um_pw_parse_u32(const char *s, uint32_t *v)
{
    uint64_t  n;
    size_t    i;

    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] >= '0'
                                     && s[1] <= '9'))
    {
        return NULL;
    }

    n = 0;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        n = n * 10 + (uint64_t) (s[i] - '0');

        if (n > UINT32_MAX) {
            return NULL;
        }
    }

    *v = (uint32_t) n;

    return s + i;
}


static const char *
um_pw_parse_b64(const char *s, size_t *bytes)
{
    size_t  i;

    for (i = 0; (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
                || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/';
         i++)
    {
        if (i == UM_PW_B64_MAX) {
            return NULL;
        }
    }

    /* a lone sixth of a byte is no encoding */
    if (i % 4 == 1) {
        return NULL;
    }

    *bytes = i * 3 / 4;

    return s + i;
}


um_pw_blocklist_t *
um_pw_blocklist_load(const char *path, char *err, size_t errlen)
{
    char               *p, *end, *eol, *word, *nul;
    size_t              size, lines, nslots, len;
    um_pw_blocklist_t  *bl;

    bl = calloc(1, sizeof(um_pw_blocklist_t));
    if (bl == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    bl->arena = um_pw_read_file(path, &size, err, errlen);
    if (bl->arena == NULL) {
        goto failed;
    }

    end = bl->arena + size;
    lines = 1;

    for (p = bl->arena; p < end; p++) {
        if (*p == '\n') {
            lines++;
        }
    }

    /* at most half full: probe sequences stay a slot or two long */
    for (nslots = 16; nslots < lines * 2; nslots *= 2) {
        /* void */
    }

    bl->slots = calloc(nslots, sizeof(um_pw_slot_t));
    if (bl->slots == NULL) {
        snprintf(err, errlen, "out of memory for %zu words", lines);
        goto failed;
    }

    bl->mask = nslots - 1;

    /* the words stay where they are read, each cut off with a NUL */
    for (p = bl->arena; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }

        *eol = '\0';

        nul = memchr(p, '\0', (size_t) (eol - p));
        if (nul != NULL) {
            eol = nul;
        }

        word = p;

        while (word < eol && (*word == ' ' || *word == '\t')) {
            word++;
        }

        len = (size_t) (eol - word);

        while (len > 0 && (word[len - 1] == ' ' || word[len - 1] == '\t'
                           || word[len - 1] == '\r'))
        {
            len--;
        }

        if (len == 0 || word[0] == '#') {
            continue;
        }

        word[len] = '\0';
        um_pw_blocklist_add(bl, word, len);
    }

    return bl;

failed:

    um_pw_blocklist_free(bl);

    return NULL;
}


void
um_pw_blocklist_free(um_pw_blocklist_t *bl)
{
    if (bl == NULL) {
        return;
    }

    free(bl->slots);
    free(bl->arena);
    free(bl);
}


size_t
um_pw_blocklist_size(const um_pw_blocklist_t *bl)
{
    return bl == NULL ? 0 : bl->nwords;
}


int
um_pw_blocklist_has(const um_pw_blocklist_t *bl, const char *word,
    size_t len)
{
    size_t         i, k;
    uint32_t       hash;
    const char    *s;
    um_pw_slot_t  *slot;

    if (bl == NULL || len == 0 || len > bl->max_len) {
        return 0;
    }

    hash = um_pw_fnv1a(word, len);

    for (i = hash & bl->mask; /* void */ ; i = (i + 1) & bl->mask) {
        slot = &bl->slots[i];

        if (slot->offset == 0) {
            return 0;
        }

        if (slot->hash != hash) {
            continue;
        }

        s = bl->arena + slot->offset - 1;

        /* the stored word is lower case and has no NUL inside */
        for (k = 0; k < len; k++) {
            if (s[k] == '\0' || um_pw_lower(word[k]) != s[k]) {
                break;
            }
        }

        if (k == len && s[len] == '\0') {
            return 1;
        }
    }
}


static char *
um_pw_read_file(const char *path, size_t *size, char *err, size_t errlen)
{
    char    *buf, *nbuf;
    size_t   n, cap, len;
    FILE    *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path,
                 strerror(errno));
        return NULL;
    }

    cap = 64 * 1024;
    len = 0;
    buf = malloc(cap);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory reading \"%s\"", path);
        goto failed;
    }

    for ( ;; ) {
        /* one byte stays free for the NUL after a last unended line */
        if (len + 1 == cap) {
            if (cap >= UM_PW_FILE_MAX) {
                snprintf(err, errlen, "\"%s\" is larger than %d MiB", path,
                         UM_PW_FILE_MAX / (1024 * 1024));
                goto failed;
            }

            nbuf = realloc(buf, cap * 2);
            if (nbuf == NULL) {
                snprintf(err, errlen, "out of memory reading \"%s\"", path);
                goto failed;
            }

            buf = nbuf;
            cap *= 2;
        }

        n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;

        if (n == 0) {
            break;
        }
    }

    if (ferror(f)) {
        snprintf(err, errlen, "cannot read \"%s\"", path);
        goto failed;
    }

    fclose(f);

    /* up to half of the doubled buffer would otherwise stay unused */
    nbuf = realloc(buf, len + 1);
    if (nbuf != NULL) {
        buf = nbuf;
    }

    buf[len] = '\0';
    *size = len;

    return buf;

failed:

    free(buf);
    fclose(f);

    return NULL;
}


static void
um_pw_blocklist_add(um_pw_blocklist_t *bl, char *word, size_t len)
{
    size_t         i, k;
    uint32_t       hash;
    um_pw_slot_t  *slot;

    for (k = 0; k < len; k++) {
        word[k] = um_pw_lower(word[k]);
    }

    hash = um_pw_fnv1a(word, len);

    for (i = hash & bl->mask; /* void */ ; i = (i + 1) & bl->mask) {
        slot = &bl->slots[i];

        if (slot->offset == 0) {
            break;
        }

        if (slot->hash == hash
            && strcmp(bl->arena + slot->offset - 1, word) == 0)
        {
            /* "Dragon" and "dragon" are one word */
            return;
        }
    }

    slot->offset = (uint32_t) (word - bl->arena) + 1;
    slot->hash = hash;

    bl->nwords++;

    if (len > bl->max_len) {
        bl->max_len = len;
    }
}


/*
 * FNV-1a over the lower-cased bytes.  No flooding concern: the set is
 * built from the administrator's file, requests only look words up.
 */
static uint32_t
um_pw_fnv1a(const char *word, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) um_pw_lower(word[i]);
        h *= 16777619u;
    }

    return h;
}


const char *
um_password_policy(const char *pw, size_t len, size_t min_len,
    size_t max_len, const um_pw_blocklist_t *bl, const char *email,
    const char *username)
{
    size_t                n;
    const unsigned char  *p;

    if (pw == NULL) {
        if (len != 0) {
            return "format";
        }

        pw = "";
    }

    p = (const unsigned char *) pw;

    if (!um_is_text(p, len) || um_pw_has_control(p, len)) {
        return "format";
    }

    n = um_text_length(p, len);

    if (n < min_len) {
        return "min_length";
    }

    if (n > max_len) {
        return "max_length";
    }

    if (um_pw_is_common(p, len, bl)) {
        return "common";
    }

    if (um_pw_is_repetitive(p, len)) {
        return "repetitive";
    }

    if (um_pw_is_sequential(p, len, n)) {
        return "sequential";
    }

    if (um_pw_has_identity(p, len, email, username)) {
        return "contains_identity";
    }

    return NULL;
}


const char *
um_password_rule_message(const char *rule)
{
    static const struct {
        const char  *rule;
        const char  *message;
    } messages[] = {
        { "format",
          "password must be text without control characters" },
        { "min_length", "password is too short" },
        { "max_length", "password is too long" },
        { "common",
          "password is too common; choose one that is harder to guess" },
        { "repetitive",
          "password must not be one character or pattern repeated" },
        { "sequential",
          "password must not be a sequence such as 12345678 or qwertyui" },
        { "contains_identity",
          "password must not contain the email address or username" }
    };

    size_t  i;

    if (rule == NULL) {
        return NULL;
    }

    for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        if (strcmp(rule, messages[i].rule) == 0) {
            return messages[i].message;
        }
    }

    return "password is not acceptable";
}


/* decodes one code point of text um_is_text() has accepted, and advances */
static uint32_t
um_pw_next(const unsigned char **p)
{
    size_t                n, i;
    uint32_t              cp;
    const unsigned char  *s;

    s = *p;

    if (s[0] < 0x80) {
        *p = s + 1;
        return s[0];
    }

    if (s[0] < 0xe0) {
        n = 1;
        cp = s[0] & 0x1f;

    } else if (s[0] < 0xf0) {
        n = 2;
        cp = s[0] & 0x0f;

    } else {
        n = 3;
        cp = s[0] & 0x07;
    }

    for (i = 1; i <= n; i++) {
        cp = (cp << 6) | (s[i] & 0x3f);
    }

    *p = s + n + 1;

    return cp;
}


/*
 * C0, DEL and C1: a tab or an escape in a password is a paste accident or
 * an attack on whatever displays it later; spaces are welcome.
 */
static int
um_pw_has_control(const unsigned char *p, size_t len)
{
    uint32_t              cp;
    const unsigned char  *last;

    last = p + len;

    while (p < last) {
        cp = um_pw_next(&p);

        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return 1;
        }
    }

    return 0;
}


/*
 * Blocklists hold the words; people append a year or a "!" to satisfy
 * composition rules elsewhere, so the word is looked up without them too.
 * Only ASCII bytes are cut off the end, so the stem is still whole UTF-8.
 */
static int
um_pw_is_common(const unsigned char *p, size_t len,
    const um_pw_blocklist_t *bl)
{
    size_t         stem;
    unsigned char  c;

    if (bl == NULL) {
        return 0;
    }

    if (um_pw_blocklist_has(bl, (const char *) p, len)) {
        return 1;
    }

    for (stem = len; stem > 0; stem--) {
        c = p[stem - 1];

        /* digits, blanks and ASCII punctuation */
        if (!(c >= ' ' && c <= '@') && !(c >= '[' && c <= '`')
            && !(c >= '{' && c <= '~'))
        {
            break;
        }
    }

    if (stem == len || um_text_length(p, stem) < 4) {
        return 0;
    }

    return um_pw_blocklist_has(bl, (const char *) p, stem);
}


/*
 * The whole password is a unit followed by copies of it, the last one
 * possibly cut short: "aaaaaaaa", "abcabcabc", "abcabcab".  Compared by
 * byte: a byte period starts on a lead byte, so it is a code point period.
 */
static int
um_pw_is_repetitive(const unsigned char *p, size_t len)
{
    size_t  unit, i;

    for (unit = 1; unit <= len / 2; unit++) {
        for (i = unit; i < len; i++) {
            if (um_pw_lower(p[i]) != um_pw_lower(p[i - unit])) {
                break;
            }
        }

        if (i == len) {
            return 1;
        }
    }

    return 0;
}


static int
um_pw_is_sequential(const unsigned char *p, size_t len, size_t n)
{
    /* keyboard rows, joined: walking across rows is walking too */
    static const char  *rows[] = {
        "`1234567890-=",
        "~!@#$%^&*()_+",
        "qwertyuiop[]\\asdfghjkl;'zxcvbnm,./",
        "qwertzuiopasdfghjklyxcvbnm",
        "azertyuiopqsdfghjklmwxcvbn"
    };

    long                  step;
    size_t                i;
    uint32_t              prev, cp;
    const unsigned char  *q, *last;

    if (n < 3) {
        return 0;
    }

    /* "12345678", "abcdefgh", "87654321", and so on in any script */
    q = p;
    last = p + len;

    prev = um_pw_next(&q);
    prev = um_pw_lower(prev);
    cp = um_pw_next(&q);
    cp = um_pw_lower(cp);
    step = (long) cp - (long) prev;

    if (step == 1 || step == -1) {
        while (q < last) {
            prev = cp;
            cp = um_pw_next(&q);
            cp = um_pw_lower(cp);

            if ((long) cp - (long) prev != step) {
                break;
            }
        }

        if ((long) cp - (long) prev == step) {
            return 1;
        }
    }

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (um_pw_along(p, len, rows[i])) {
            return 1;
        }
    }

    return 0;
}


/* the password is a stretch of the row, forwards or backwards */
static int
um_pw_along(const unsigned char *p, size_t len, const char *row)
{
    size_t  rlen, s, i;

    rlen = strlen(row);

    if (len > rlen) {
        return 0;
    }

    for (s = 0; s < rlen; s++) {
        if ((unsigned char) row[s] != um_pw_lower(p[0])) {
            continue;
        }

        for (i = 1; i < len && s + i < rlen; i++) {
            if ((unsigned char) row[s + i] != um_pw_lower(p[i])) {
                break;
            }
        }

        if (i == len) {
            return 1;
        }

        for (i = 1; i < len && i <= s; i++) {
            if ((unsigned char) row[s - i] != um_pw_lower(p[i])) {
                break;
            }
        }

        if (i == len) {
            return 1;
        }
    }

    return 0;
}


/*
 * The account's own names are the first guesses of anyone who targets
 * it.  Short names are only refused as the whole password: "ann" inside
 * a passphrase is no weakness.
 */
static int
um_pw_has_identity(const unsigned char *p, size_t len, const char *email,
    const char *username)
{
    size_t       ulen, elen, llen;
    const char  *at;

    if (username != NULL && username[0] != '\0') {
        ulen = strlen(username);

        if (um_pw_equal(p, len, username, ulen)
            || (um_pw_chars(username, ulen) >= 4
                && um_pw_contains(p, len, username, ulen)))
        {
            return 1;
        }
    }

    if (email != NULL && email[0] != '\0') {
        elen = strlen(email);

        /* the last '@': a quoted local part may hold one */
        at = strrchr(email, '@');
        llen = (at == NULL) ? elen : (size_t) (at - email);

        if (um_pw_contains(p, len, email, elen)) {
            return 1;
        }

        if (llen > 0
            && (um_pw_equal(p, len, email, llen)
                || (um_pw_chars(email, llen) >= 4
                    && um_pw_contains(p, len, email, llen))))
        {
            return 1;
        }
    }

    return 0;
}


static int
um_pw_equal(const unsigned char *p, size_t len, const char *s, size_t slen)
{
    return len == slen && um_pw_contains(p, len, s, slen);
}


static int
um_pw_contains(const unsigned char *p, size_t len, const char *s,
    size_t slen)
{
    size_t  i, k;

    if (slen == 0 || slen > len) {
        return 0;
    }

    for (i = 0; i + slen <= len; i++) {
        for (k = 0; k < slen; k++) {
            if (um_pw_lower(p[i + k]) != um_pw_lower((unsigned char) s[k])) {
                break;
            }
        }

        if (k == slen) {
            return 1;
        }
    }

    return 0;
}


/* code points, or bytes when the name is not UTF-8 */
static size_t
um_pw_chars(const char *s, size_t len)
{
    size_t  n;

    n = um_text_length((const unsigned char *) s, len);

    return (n == (size_t) -1) ? len : n;
}
