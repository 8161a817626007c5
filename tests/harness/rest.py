"""Requests to a Patroni REST API for the suites that check who may do what (standard library
only, so any suite can import it)."""
import base64
import json
import urllib.error
import urllib.request


def basic_auth(user, password):
    """The Authorization header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(host, port, method, path, body=None, authorization=None, timeout=30):
    """(HTTP status, body text) of one request; a JSON body when body is not None. HTTP errors
    are returned, not raised; a connection that fails raises OSError."""
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
