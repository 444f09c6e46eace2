package com.acme.search;

import com.amazonaws.auth.*;

public class SearchConfig {
    AWSCredentials creds = new BasicAWSCredentials(
        "AKIABZ26X2L2ILCY6PNW",
        "VADMNqw/qwDHE3yiBWQcvo6xCHXewDncDe8JIdz/");

    public void login(String username, char[] password) { }
    private static final String TOKEN_HEADER = "X-Auth-Token";
    private static final int PASSWORD_MIN_LENGTH = 12;
}
