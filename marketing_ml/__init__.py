"""marketing_ml: conversion, churn and next-best-action models for a 401(k) provider, as a Dagster asset graph."""
