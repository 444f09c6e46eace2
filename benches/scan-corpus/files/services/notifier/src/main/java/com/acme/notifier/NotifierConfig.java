package com.acme.notifier;

import com.amazonaws.auth.*;

public class NotifierConfig {
    private static final String JDBC_URL = "jdbc:mysql://db.internal:3306/notifier?user=app&password=4w7bFwhn4aDR0Tw9t";

    String apiKey = secretsClient.getSecretValue(req).secretString();
    private static final int PASSWORD_MIN_LENGTH = 12;
    private static final String SCHEMA_SHA = "ada8286a8313ffbc436be4b51bd66b670115d41c";
}
