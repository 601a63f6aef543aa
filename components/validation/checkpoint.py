"""Run an expectation suite on a DataFrame through a GX 1.x Checkpoint that also builds the HTML data docs."""
from __future__ import annotations

from pathlib import Path

import great_expectations as gx
import pandas as pd
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from components.validation.checks import ROW

SITE = "reelforge"
DATASOURCE = "reelforge"
ASSET = "metadata"


def ephemeral_context(docs_dir: Path):
    """An in-memory GX context: no analytics (no network here), no progress bars, one docs site at docs_dir."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def result_format(df: pd.DataFrame, max_examples: int) -> dict:
    """SUMMARY results whose example rows carry the row number, and id/path when the table has them."""
    index_columns = [ROW] + [c for c in ("id", "path") if c in df]
    return {
        "result_format": "SUMMARY",
        "unexpected_index_column_names": index_columns,
        "partial_unexpected_count": max_examples,
    }


def run_checkpoint(
    df: pd.DataFrame, suite: gx.ExpectationSuite, docs_dir: Path, max_examples: int
) -> tuple[bool, list[dict]]:
    """Validate df against suite; returns (success, one JSON result per expectation in suite order)."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    context = ephemeral_context(docs_dir)
    batch = (
        context.data_sources.add_pandas(DATASOURCE)
        .add_dataframe_asset(ASSET)
        .add_batch_definition_whole_dataframe("whole table")
    )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=ASSET, data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=ASSET,
        validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
        result_format=result_format(df, max_examples),
    ))
    outcome = checkpoint.run(batch_parameters={"dataframe": df})
    (suite_result,) = outcome.run_results.values()
    # GX returns results grouped by metric, not in suite order; the ids the suite assigned restore that order
    by_id = {r.expectation_config.id: r.to_json_dict() for r in suite_result.results}
    return bool(outcome.success), [by_id[e.id] for e in suite.expectations]
