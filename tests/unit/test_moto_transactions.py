"""The tests' moto backs up only the items a transaction writes (local/moto_transactions.py):
a cancelled transaction still leaves the table exactly as it was."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.moto_transactions import install

#: one transaction item both tests write: n += 1 on item "a"
ADD_ONE_TO_A: Any = {
    "Update": {
        "TableName": "t",
        "Key": {"pk": {"S": "a"}},
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
}


@mock_aws
def test_a_cancelled_transaction_leaves_every_item_as_it_was():
    assert install()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": key}, "n": {"N": "1"}})
    before = sorted(str(item) for item in dynamodb.scan(TableName="t")["Items"])

    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(
            TransactItems=[
                ADD_ONE_TO_A,  # applied in place, then undone
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}}}},  # created, then removed
                {"Delete": {"TableName": "t", "Key": {"pk": {"S": "b"}}}},  # deleted, then restored
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "c"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },  # fails
            ]
        )

    assert sorted(str(item) for item in dynamodb.scan(TableName="t")["Items"]) == before

    dynamodb.transact_write_items(
        TransactItems=[
            ADD_ONE_TO_A,
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}}}},
        ]
    )
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "2"}
    assert "Item" in dynamodb.get_item(TableName="t", Key={"pk": {"S": "new"}})
