from agent.secrets import forget_secrets, mask, register_secret


def test_registered_secrets_are_masked_longest_first():
    register_secret("abcd")
    register_secret("abcd-efgh-1234")
    register_secret("x")  # too short to mask meaningfully: ignored
    try:
        assert mask("key abcd-efgh-1234 and abcd, x") == "key *** and ***, x"
    finally:
        forget_secrets()
    assert mask("abcd") == "abcd"
