/* unit-sources: src/http/um_validate.c */

#include <string.h>
#include "http/um_validate.h"
#include "tap.h"

#define S(s)  (const unsigned char *) (s), strlen(s)


int
main(void)
{
    /* UUIDs in path parameters */
    ok(um_is_uuid(S("7ac7de82-130b-4ef1-adfc-81ef2fc623e4")), "uuid");
    ok(um_is_uuid(S("7AC7DE82-130B-4EF1-ADFC-81EF2FC623E4")), "upper uuid");
    ok(!um_is_uuid(S("7ac7de82-130b-4ef1-adfc-81ef2fc623e")), "short uuid");
    ok(!um_is_uuid(S("7ac7de82x130b-4ef1-adfc-81ef2fc623e4")), "bad dash");
    ok(!um_is_uuid(S("7ac7de82-130b-4ef1-adfc-81ef2fc623eg")), "non-hex");
    ok(!um_is_uuid(S("507f1f77bcf86cd799439011")), "object id is no uuid");

    /* text that may travel as a SQL parameter */
    ok(um_is_text(S("plain")), "ascii text");
    ok(um_is_text(S("Zo\xc3\xab \xe6\x9d\x8e \xf0\x9f\x98\x80")),
       "two, three and four byte sequences");
    ok(!um_is_text((const unsigned char *) "a\0b", 3), "NUL refused");
    ok(!um_is_text(S("\xc0\xaf")), "overlong '/' refused");
    ok(!um_is_text(S("\xed\xa0\x80")), "surrogate refused");
    ok(!um_is_text(S("\xe6\x9d")), "truncated sequence refused");
    ok(!um_is_text(S("\xff")), "invalid lead byte refused");
    ok(!um_is_text(S("\xf4\x90\x80\x80")), "beyond U+10FFFF refused");
    ok(um_text_length(S("\xe6\x9d\x8e\xe5\x9b\x9b")) == 2, "code points");

    /* emails */
    ok(um_is_email(S("john.doe@example.com")), "email");
    ok(um_is_email(S("a+tag@sub.example.co.uk")), "email with tag");
    ok(!um_is_email(S("john.doe@example")), "no dot in domain");
    ok(!um_is_email(S("@example.com")), "empty local part");
    ok(!um_is_email(S("a@@example.com")), "two @");
    ok(!um_is_email(S("a b@example.com")), "space");
    ok(!um_is_email(S("a@example..com")), "empty label");
    ok(!um_is_email(S("a@example.com.")), "trailing dot");
    ok(!um_is_email(S("x' OR '1'='1@example.com")), "space in injection");

    /* phones */
    ok(um_is_e164(S("+1234567890")), "e164");
    ok(um_is_e164(S("+491701234567")), "e164 de");
    ok(!um_is_e164(S("1234567890")), "no plus");
    ok(!um_is_e164(S("+0123456789")), "leading zero");
    ok(!um_is_e164(S("+1234567890123456")), "16 digits");
    ok(!um_is_e164(S("+12 345")), "space");

    /* slugs */
    ok(um_is_slug(S("default")), "slug");
    ok(um_is_slug(S("acme-corp_2")), "slug with - and _");
    ok(!um_is_slug(S("-acme")), "leading dash");
    ok(!um_is_slug(S("Acme")), "upper case");
    ok(!um_is_slug(S("acme'--")), "quote");
    ok(!um_is_slug(S("")), "empty slug");

    /* names */
    ok(um_is_name(S("John"), 100), "name");
    ok(um_is_name(S("Mary-Jane O'Brien"), 100), "hyphen, apostrophe, space");
    ok(um_is_name(S("Zo\xc3\xab"), 100), "latin-1 letter");
    ok(um_is_name(S("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd"), 100), "cyrillic");
    ok(um_is_name(S("\xe6\x9d\x8e"), 100), "CJK");
    ok(um_is_name(S("J. R. R."), 100), "initials");
    ok(!um_is_name(S("John1"), 100), "digit refused");
    ok(!um_is_name(S("<script>"), 100), "markup refused");
    ok(!um_is_name(S(" John"), 100), "leading space refused");
    ok(!um_is_name(S("John "), 100), "trailing space refused");
    ok(!um_is_name(S("John  Doe"), 100), "double space refused");
    ok(!um_is_name(S(""), 100), "empty refused");
    ok(!um_is_name(S("abcdef"), 5), "longer than max refused");
    ok(!um_is_name(S("Jo\xc3\x97n"), 100), "multiplication sign refused");

    return done_testing();
}
