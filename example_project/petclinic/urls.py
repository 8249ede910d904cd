"""URLs of the pet-clinic pages."""

from django.urls import path

from . import views

app_name = "petclinic"

urlpatterns = [
    path("", views.index, name="index"),
    path("owners/", views.owner_list, name="owner-list"),
    path("owners/<int:pk>/", views.owner_detail, name="owner-detail"),
    path("pets/", views.pet_list, name="pet-list"),
    path("pets/<int:pk>/", views.pet_detail, name="pet-detail"),
    path("species/", views.species, name="species"),
]
