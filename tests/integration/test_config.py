"""Configuration: a postscreen main.cf loads; bad ones fail with one clear line."""
import os
import re

import pytest

from mxs import run_mxscreen

# Every postscreen_* parameter of Postfix 3.7 (spec §2.1), with valid,
# mostly non-default values, plus the legacy names.
POSTSCREEN_MAIN_CF = r"""
# A Postfix main.cf, with the usual Debian lines mxscreen ignores.
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6
smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = mx.example.com
alias_maps = hash:/etc/aliases
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
inet_protocols = all
postscreen_access_list = permit_mynetworks,
    cidr:{{192.0.2.0/24 reject}, {198.51.100.7 permit}}
postscreen_allowlist_interfaces = !198.51.100.2, static:all
postscreen_bare_newline_action = enforce
postscreen_bare_newline_enable = yes
postscreen_bare_newline_ttl = 20d
postscreen_cache_cleanup_interval = 6h
postscreen_cache_map = btree:$data_directory/postscreen_cache
postscreen_cache_retention_time = 14d
postscreen_client_connection_count_limit = 10
postscreen_command_count_limit = 30
postscreen_command_filter =
postscreen_command_time_limit = ${stress?{5}:{120}}s
postscreen_denylist_action = drop
postscreen_disable_vrfy_command = yes
postscreen_discard_ehlo_keyword_address_maps =
postscreen_discard_ehlo_keywords = silent-discard, dsn
postscreen_dnsbl_action = enforce
postscreen_dnsbl_allowlist_threshold = -1
postscreen_dnsbl_max_ttl = 2h
postscreen_dnsbl_min_ttl = 120s
postscreen_dnsbl_reply_map =
postscreen_dnsbl_sites = zen.spamhaus.org=127.0.0.[2..11]*3
    bl.spamcop.net*2 list.dnswl.org=127.0.[0..255].[2;3]*-4
postscreen_dnsbl_threshold = 3
postscreen_dnsbl_timeout = 5s
postscreen_enforce_tls = no
postscreen_expansion_filter = $smtpd_expansion_filter
postscreen_forbidden_commands = $smtpd_forbidden_commands
postscreen_greet_action = enforce
postscreen_greet_banner = $smtpd_banner
postscreen_greet_ttl = 2d
postscreen_greet_wait = ${stress?{2}:{6}}s
postscreen_helo_required = yes
postscreen_non_smtp_command_action = drop
postscreen_non_smtp_command_enable = yes
postscreen_non_smtp_command_ttl = 15d
postscreen_pipelining_action = enforce
postscreen_pipelining_enable = yes
postscreen_pipelining_ttl = 15d
postscreen_post_queue_limit = $default_process_limit
postscreen_pre_queue_limit = $default_process_limit
postscreen_reject_footer = \c. See https://example.com/help
postscreen_reject_footer_maps =
postscreen_tls_security_level = may
postscreen_upstream_proxy_protocol =
postscreen_upstream_proxy_timeout = 5s
postscreen_use_tls = no
postscreen_watchdog_timeout = 10s
postscreen_blacklist_action = drop
postscreen_whitelist_interfaces = static:all
postscreen_dnsbl_whitelist_threshold = -1
postscreen_dnsbl_ttl = 1h
"""


def write_cf(workdir, text, name="main.cf"):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_postscreen_main_cf_loads(workdir):
    path = write_cf(workdir, POSTSCREEN_MAIN_CF + "mxscreen_user = nobody\n")
    r = run_mxscreen(["-c", path, "-t"])
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
    # Known postscreen names draw no "unknown parameter" warning.
    assert "unknown parameter" not in r.stderr, r.stderr


def test_every_postscreen_parameter_is_known(workdir):
    """-n lists each of the 51 names, proving each one is in the table."""
    path = write_cf(workdir, POSTSCREEN_MAIN_CF)
    r = run_mxscreen(["-c", path, "-n"])
    assert r.returncode == 0, r.stderr
    names = {l.split(" = ")[0] for l in r.stdout.splitlines()}
    wanted = set(re.findall(r"^(postscreen_\w+) =", POSTSCREEN_MAIN_CF, re.M))
    assert len(wanted) == 51
    # Parameters set to their default value are not "non-default".
    for same in ("postscreen_greet_wait", "postscreen_upstream_proxy_timeout",
                 "postscreen_watchdog_timeout", "postscreen_command_filter",
                 "postscreen_pipelining_action", "postscreen_non_smtp_command_action",
                 "postscreen_use_tls", "postscreen_enforce_tls", "postscreen_cache_map",
                 "postscreen_post_queue_limit", "postscreen_pre_queue_limit",
                 "postscreen_greet_banner", "postscreen_forbidden_commands",
                 "postscreen_expansion_filter", "postscreen_dnsbl_reply_map",
                 "postscreen_reject_footer_maps", "postscreen_upstream_proxy_protocol",
                 "postscreen_discard_ehlo_keyword_address_maps"):
        wanted.discard(same)
    assert wanted <= names, wanted - names
    assert "biff" not in names  # not mxscreen's: ignored
    assert "postscreen_access_list = permit_mynetworks," in r.stdout


def test_unknown_postscreen_name_warns_but_loads(workdir):
    path = write_cf(workdir, "postscreen_frobnicate = yes\nmxscreen_bogus = 1\nfoo = bar\n"
                    "mxscreen_user = nobody\n")
    r = run_mxscreen(["-c", path, "-t"])
    assert r.returncode == 0
    assert re.search(r"warning: .*main\.cf, line 1: unknown parameter postscreen_frobnicate",
                     r.stderr)
    assert re.search(r"warning: .*main\.cf, line 2: unknown parameter mxscreen_bogus", r.stderr)
    assert "foo" not in r.stderr


def test_override_on_command_line(workdir):
    path = write_cf(workdir, "postscreen_greet_wait = 6s\n")
    r = run_mxscreen(["-c", path, "-o", "postscreen_greet_wait=9s", "-n"])
    assert r.stdout.strip() == "postscreen_greet_wait = 9s"


# (config text, the line number, the parameter, the value, more words expected)
BAD = [
    ("postscreen_greet_wait = 6x\n", 1, "postscreen_greet_wait", "6x", "bad time value"),
    ("a = b\npostscreen_use_tls = maybe\n", 2, "postscreen_use_tls", "maybe", "boolean"),
    ("postscreen_command_count_limit = many\n", 1, "postscreen_command_count_limit", "many",
     "numerical"),
    ("\n\npostscreen_post_queue_limit = 2\n", 3, "postscreen_post_queue_limit", "2", "minimum"),
    ("postscreen_greet_action = reject\n", 1, "postscreen_greet_action", "reject",
     "bad postscreen_greet_action value"),
    ("postscreen_dnsbl_action\n", 1, "postscreen_dnsbl_action", "postscreen_dnsbl_action",
     "missing '='"),
    ("postscreen_access_list = permit_mynetworks, hash:/etc/x\n", 1, "postscreen_access_list",
     "hash:/etc/x", "unsupported table type"),
    ("postscreen_access_list = permit_mynetworks, permit_sasl_authenticated\n", 1,
     "postscreen_access_list", "permit_sasl_authenticated", "unknown command"),
    ("mxscreen_backend = localhost:25\n", 1, "mxscreen_backend", "localhost:25", "numeric"),
    ("mxscreen_handoff = lmtp\n", 1, "mxscreen_handoff", "lmtp", "proxy|xclient|pass"),
    ("postscreen_forbidden_commands = CONNECT regexp:{{/(/ x}}\n", 1,
     "postscreen_forbidden_commands", "/(/", "bad regular expression"),
    ("postscreen_command_filter = regexp:/no/such/file\n", 1, "postscreen_command_filter",
     "/no/such/file", "No such file"),
    ("postscreen_cache_map = memcache:/etc/postfix/ps\n", 1, "postscreen_cache_map", "memcache",
     "unsupported cache type"),
    ("postscreen_use_tls = yes\nsmtpd_tls_protocols = >=TLSv9\n", 2, "smtpd_tls_protocols",
     ">=TLSv9", "unknown TLS protocol"),
    ("postscreen_tls_security_level = encrypt\nsmtpd_tls_mandatory_ciphers = superb\n", 2,
     "smtpd_tls_mandatory_ciphers", "superb", "unknown cipher grade"),
    ("postscreen_greet_banner = ${myhostname\n", 1, "postscreen_greet_banner", "${myhostname",
     "truncated macro reference"),
    ("mynetworks = 127.0.0.1/8\n", 1, "mynetworks", "127.0.0.1/8", "non-null host address bits"),
    ("mxscreen_listen = 127.0.0.1:99999\n", 1, "mxscreen_listen", "99999", "bad port"),
    ("postscreen_upstream_proxy_protocol = nginx\n", 1, "postscreen_upstream_proxy_protocol",
     "nginx", "haproxy"),
    ("mxscreen_user = no-such-user-here\nmxscreen_listen = 127.0.0.1:PORT\n", 1, "mxscreen_user",
     "no-such-user-here", "unknown user"),
]


@pytest.mark.parametrize("text,line,param,value,words", BAD,
                         ids=[b[2] + "-" + b[4].split()[0] for b in BAD])
def test_bad_config_one_line_exit_1(workdir, text, line, param, value, words):
    from mxs import free_port
    path = write_cf(workdir, text.replace("PORT", str(free_port())))
    r = run_mxscreen(["-c", path])
    assert r.returncode == 1, (r.returncode, r.stderr)
    fatal = [l for l in r.stderr.splitlines() if "fatal:" in l]
    assert len(fatal) == 1, r.stderr
    f = fatal[0]
    assert f"{path}, line {line}" in f, f
    assert param in f and value in f and words in f, f


def test_bad_cidr_file_names_both_files(workdir):
    cidr = write_cf(workdir, "192.0.2.0/24 permit\n10.1.2.3/8 reject\n", "acl.cidr")
    path = write_cf(workdir, f"postscreen_access_list = cidr:{cidr}\n")
    r = run_mxscreen(["-c", path, "-t"])
    assert r.returncode == 1
    assert f"{path}, line 1: parameter postscreen_access_list: {cidr}, line 2:" in r.stderr
    assert "non-null host address bits" in r.stderr


def test_missing_config_file(workdir):
    r = run_mxscreen(["-c", os.path.join(workdir, "nope.cf")])
    assert r.returncode == 1
    assert "nope.cf: No such file or directory" in r.stderr


def test_bad_usage():
    r = run_mxscreen(["-x"])
    assert r.returncode == 1 and "usage: mxscreen -c FILE" in r.stderr


def test_log_format_like_postfix_maillog_file(workdir):
    from mxs import Mxscreen
    with Mxscreen(workdir, {"syslog_name": "postfix/postscreen",
                            "myhostname": "mx1.example.com"}) as mx:
        c = mx.connect(src="127.0.0.90")
        mx.wait_for_log(r"CONNECT from \[127\.0\.0\.90\]")
        c.close()
        line = [l for l in mx.log_text().splitlines() if "CONNECT from" in l][0]
        assert re.match(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d mx1 postfix/postscreen\[\d+\]: "
                        r"CONNECT from \[127\.0\.0\.90\]:\d+ to \[127\.0\.0\.1\]:\d+$", line), line


def test_syslog_name_is_completed_as_postfix_does(workdir):
    """Postfix logs as "$syslog_name/postscreen": a main.cf with
    syslog_name = postfix-in keeps that tag; a name with a slash is the
    whole tag; unset, the tag is mxscreen."""
    from mxs import Mxscreen
    for i, (name, tag) in enumerate([("postfix-in", "postfix-in/postscreen"),
                                     ("postfix", "postfix/postscreen"),
                                     ("edge/screen", "edge/screen"), (None, "mxscreen")]):
        p = {"myhostname": "mx1.example.com"}
        if name is not None:
            p["syslog_name"] = name
        with Mxscreen(workdir, p, name=f"tag{i}") as mx:
            c = mx.connect(src="127.0.0.91")
            mx.wait_for_log(r"CONNECT from \[127\.0\.0\.91\]")
            c.close()
            line = [l for l in mx.log_text().splitlines() if "CONNECT from" in l][0]
            assert re.match(rf"^[A-Z][a-z]{{2}} \d\d \d\d:\d\d:\d\d mx1 {re.escape(tag)}\[\d+\]: "
                            r"CONNECT from ", line), (name, line)
