"""What the published documents (OpenAPI, AsyncAPI) say about this service."""

TITLE = {{ cookiecutter.project_name | tojson }}
DESCRIPTION = {{ cookiecutter.description | tojson }}
VERSION = "0.1.0"
CONTACT = {
    "name": {{ cookiecutter.author_name | tojson }},
    "email": {{ cookiecutter.author_email | tojson }},
}
