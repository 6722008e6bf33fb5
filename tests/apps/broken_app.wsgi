"""Applications that break the WSGI rules, one per PATH_INFO.

Each failure carries a message of its own ("broken-app: ...") so a test can
find its traceback in the error log.  /ok answers normally, to prove the
server still serves after a failure.  ?marker=<absolute path> names a file
written when the response iterable is closed.
"""
import json
import os
from urllib.parse import parse_qs


def _marker(environ):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    return q.get("marker", [None])[-1]


class Closing:
    def __init__(self, items, marker):
        self.items = iter(items)
        self.marker = marker

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.items)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        if self.marker:
            with open(self.marker + ".tmp", "w") as f:
                json.dump({"closed": True, "pid": os.getpid()}, f)
            os.rename(self.marker + ".tmp", self.marker)


TEXT = [("Content-Type", "text/plain")]


def ok(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"still serving\n"]


def raise_before_start(environ, start_response):
    raise RuntimeError("broken-app: raised before start_response")


def raise_after_start(environ, start_response):
    start_response("200 OK", TEXT)
    raise RuntimeError("broken-app: raised after start_response")


def raise_in_first_item(environ, start_response):
    start_response("200 OK", TEXT)
    return Closing([RuntimeError("broken-app: raised by the first item")],
                   _marker(environ))


def no_start_response(environ, start_response):
    return [b"a body without a status\n"]


def start_twice(environ, start_response):
    start_response("200 OK", TEXT)
    start_response("202 Accepted", TEXT)
    return [b"second start_response was accepted\n"]


def status_not_str(environ, start_response):
    start_response(200, TEXT)
    return [b"int status was accepted\n"]


def status_bytes(environ, start_response):
    start_response(b"200 OK", TEXT)
    return [b"bytes status was accepted\n"]


def status_no_reason_space(environ, start_response):
    start_response("abc", TEXT)
    return [b"status 'abc' was accepted\n"]


def status_two_digits(environ, start_response):
    start_response("20 OK", TEXT)
    return [b"status '20 OK' was accepted\n"]


def headers_not_list(environ, start_response):
    start_response("200 OK", {"Content-Type": "text/plain"})
    return [b"dict headers were accepted\n"]


def header_name_not_str(environ, start_response):
    start_response("200 OK", TEXT + [(b"X-Bytes-Name", "1")])
    return [b"bytes header name was accepted\n"]


def header_value_not_str(environ, start_response):
    start_response("200 OK", TEXT + [("X-Int-Value", 1)])
    return [b"int header value was accepted\n"]


def header_value_crlf(environ, start_response):
    start_response("200 OK", TEXT + [("X-Split", "a\r\nX-Injected: yes")])
    return [b"CRLF in a header value was accepted\n"]


def header_value_lf(environ, start_response):
    start_response("200 OK", TEXT + [("X-Split", "a\nX-Injected: yes")])
    return [b"LF in a header value was accepted\n"]


def header_name_crlf(environ, start_response):
    start_response("200 OK", TEXT + [("X-Split\r\nX-Injected", "yes")])
    return [b"CRLF in a header name was accepted\n"]


def header_name_char(environ, start_response):
    # ?char=HEX: a header name with that character in its middle.
    char = chr(int(parse_qs(environ.get("QUERY_STRING", ""))["char"][-1],
                   16))
    start_response("200 OK", TEXT + [("X-Bad%sName" % char, "yes")])
    return [b"a header name with a control character was accepted\n"]


def header_value_not_latin1(environ, start_response):
    start_response("200 OK", TEXT + [("X-Euro", "\u20ac")])
    return [b"a header value outside latin-1 was accepted\n"]


def header_value_control(environ, start_response):
    start_response("200 OK", TEXT + [("X-Control", "a\x01b\x7fc")])
    return [b"control characters in a header value were accepted\n"]


def body_str(environ, start_response):
    start_response("200 OK", TEXT)
    return ["a str body item\n"]


def body_str_later(environ, start_response):
    start_response("200 OK", TEXT)
    return Closing([b"bytes first;", "then a str\n"], _marker(environ))


def content_length_invalid(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "12abc")])
    return [b"12abc bytes\n"]


def content_length_negative(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "-1")])
    return [b"negative\n"]


def body_longer(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return [b"0123456789"]


def body_shorter(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "10")])
    return [b"01234"]


def raise_mid_stream(environ, start_response):
    start_response("200 OK", TEXT)
    return Closing([b"first chunk;", b"second chunk;",
                    RuntimeError("broken-app: raised mid-stream")],
                   _marker(environ))


def not_iterable(environ, start_response):
    start_response("200 OK", TEXT)
    return 42


ROUTES = {
    "/ok": ok,
    "/raise-before-start": raise_before_start,
    "/raise-after-start": raise_after_start,
    "/raise-in-first-item": raise_in_first_item,
    "/no-start-response": no_start_response,
    "/start-twice": start_twice,
    "/status-not-str": status_not_str,
    "/status-bytes": status_bytes,
    "/status-abc": status_no_reason_space,
    "/status-two-digits": status_two_digits,
    "/headers-not-list": headers_not_list,
    "/header-name-not-str": header_name_not_str,
    "/header-value-not-str": header_value_not_str,
    "/header-value-crlf": header_value_crlf,
    "/header-value-lf": header_value_lf,
    "/header-name-crlf": header_name_crlf,
    "/header-name-char": header_name_char,
    "/header-value-not-latin1": header_value_not_latin1,
    "/header-value-control": header_value_control,
    "/body-str": body_str,
    "/body-str-later": body_str_later,
    "/content-length-invalid": content_length_invalid,
    "/content-length-negative": content_length_negative,
    "/body-longer": body_longer,
    "/body-shorter": body_shorter,
    "/raise-mid-stream": raise_mid_stream,
    "/not-iterable": not_iterable,
}


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        start_response("404 Not Found", TEXT)
        return [b"no such broken route\n"]
    return route(environ, start_response)
