"""The OpenAPI 3.1 description of the token API (served at /api/openapi.json)."""

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
EVALUATION = {
    "type": ["object", "null"],
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"enum": ["queued", "running", "succeeded", "failed", "error"]},
        "attempt": {"type": "integer"},
        "queued_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "public_score": {"type": ["number", "null"]},
        "private_score": {"type": ["number", "null"]},
        "metrics": {"type": "object"},
        "metric_labels": {
            "type": "object",
            "description": "For each metric key in metrics: its label, a one-line explanation, and which way is "
            "better (min, max, or null for a diagnostic), as the pages show them.",
            "additionalProperties": {
                "type": "object",
                "required": ["label", "explanation", "direction"],
                "properties": {
                    "label": {"type": "string"},
                    "explanation": {"type": "string"},
                    "direction": {"enum": ["min", "max", None]},
                },
            },
        },
        "error": {"$ref": "#/components/schemas/Error/properties/error"},
        "log_tail": {
            "type": "string",
            "description": "Of a succeeded or failed evaluation: the end of the run's log that she may see, as her "
            "submission page shows it.",
        },
    },
}
SUBMISSION = {
    "type": "object",
    "required": ["id", "number", "lab", "sha256", "received_at", "status"],
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "integer", "description": "Her own count of submissions to this lab, from 1."},
        "lab": {"type": "string"},
        "sha256": {"type": "string"},
        "size": {"type": "integer"},
        "received_at": {"type": "string"},
        "late": {"type": "boolean"},
        "is_final": {"type": "boolean"},
        "url": {"type": "string", "description": "The submission's page, where its owner watches it being graded."},
        "status": {"type": "string"},
        "warning": {"type": "string"},
        "description": {"type": "string"},
        "evaluation": {"$ref": "#/components/schemas/Evaluation"},
        "evaluations": {"type": "array", "items": {"$ref": "#/components/schemas/Evaluation"}},
    },
}


def _errors(*codes: int) -> dict:
    return {
        str(code): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def document(server_url: str) -> dict:
    lab_slug = {"name": "lab_slug", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Course platform submission API",
            "version": "1",
            "description": "Submit lab artifacts from a notebook with a personal token, and read your own results.",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"token": []}],
        "paths": {
            "/api/labs/{lab_slug}/submissions": {
                "get": {
                    "summary": "Your submissions to a lab",
                    "parameters": [lab_slug],
                    "responses": {
                        "200": {
                            "description": "your submissions, newest first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["submissions"],
                                        "properties": {
                                            "submissions": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Submission"},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(401, 403, 404, 405),
                    },
                },
                "post": {
                    "summary": "Submit an artifact",
                    "description": "The lab's named files as multipart fields, or one .zip holding exactly them.",
                    "parameters": [lab_slug],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "model.safetensors": {"type": "string", "format": "binary"},
                                        "config.json": {"type": "string", "format": "binary"},
                                        "adapter_model.safetensors": {"type": "string", "format": "binary"},
                                        "adapter_config.json": {"type": "string", "format": "binary"},
                                        "artifact": {"type": "string", "format": "binary", "description": "a .zip"},
                                        "description": {"type": "string", "maxLength": 4000},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "accepted and queued",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}},
                        },
                        **_errors(400, 401, 403, 404, 405, 408, 409, 413, 429),
                    },
                },
            },
            "/api/submissions/{pk}": {
                "get": {
                    "summary": "One of your submissions with all its evaluations",
                    "parameters": [{"name": "pk", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {
                        "200": {
                            "description": "the submission",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}},
                        },
                        **_errors(401, 403, 404, 405),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Evaluation": EVALUATION, "Submission": SUBMISSION},
        },
    }
