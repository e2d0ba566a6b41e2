"""Prime numbers: a sieve and a test."""


def sieve(limit):
    """All primes below limit, by the sieve of Eratosthenes."""
    if limit < 3:
        return []
    is_prime = [True] * limit
    is_prime[0] = is_prime[1] = False
    for i in range(2, int(limit ** 0.5) + 1):
        if is_prime[i]:
            for j in range(i * i, limit, i):
                is_prime[j] = False
    return [i for i, p in enumerate(is_prime) if p]


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


if __name__ == "__main__":
    assert sieve(20) == [2, 3, 5, 7, 11, 13, 17, 19]
    assert all(is_prime(p) for p in sieve(1000))
