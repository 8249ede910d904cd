"""A small pet-clinic Django site that demonstrates lexigram_cache_django."""
