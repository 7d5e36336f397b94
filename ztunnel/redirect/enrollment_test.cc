// Placeholder until the privileged enrollment tests land.
#include <doctest/doctest.h>
