"""Private payload builders of :mod:`tracer.devserver`, one module per wire API.

Each builder takes a parsed JSON request body and the request's control headers and returns a
:class:`~tracer._devserver.common.JsonReply` or :class:`~tracer._devserver.common.StreamReply`
(or raises :class:`~tracer._devserver.common.ApiError`); :mod:`tracer.devserver` owns the HTTP
plumbing and the public ``DevServer`` API. Nothing here is a stable interface.
"""
