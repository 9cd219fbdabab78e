/* The wire protocol's fixed texts and the close codes the library sends
 * (PROTOCOL.md). Nothing but constants: anything may include it. */
#ifndef WSA_LIB_PROTO_H
#define WSA_LIB_PROTO_H

/* Errors: {"type":"error","message":TEXT}. */
#define WSA_MSG_FIRST_LOGIN   "First message must be login with token"
#define WSA_MSG_AUTH_FAILED   "Authentication failed"
#define WSA_MSG_AUTH_TIMEOUT  "Authentication timeout"
#define WSA_MSG_TOKEN_EXPIRED "Token expired"
#define WSA_MSG_UNKNOWN_TYPE  "Unknown message type"
#define WSA_MSG_INVALID	      "Invalid message format"
#define WSA_MSG_RATE_LIMIT    "Rate limit exceeded"
#define WSA_MSG_FORBIDDEN     "Forbidden"

/* Fixed replies. */
#define WSA_MSG_AUTH_OK "{\"type\":\"auth\",\"message\":\"Authenticated\"}"
#define WSA_MSG_PONG	"{\"type\":\"pong\"}"

/* 1002: not in the public enum, as a host never closes with it. */
#define WSA_CLOSE_PROTOCOL 1002
/* The code a close handler sees when no close frame came back. */
#define WSA_CLOSE_ABNORMAL 1006

#endif
