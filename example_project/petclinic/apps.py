"""App configuration for the pet clinic."""

from django.apps import AppConfig


class PetclinicConfig(AppConfig):
    name = "example_project.petclinic"
    label = "petclinic"
    verbose_name = "Pet clinic"
    default_auto_field = "django.db.models.BigAutoField"
