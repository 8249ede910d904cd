"""The pet-clinic app: owners, their pets and the vaccines the pets have had."""
