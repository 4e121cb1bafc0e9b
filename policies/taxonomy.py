"""The data categories of the fideslang default taxonomy, carried as data.

Source: the ``fideslang`` package, version 3.1.4 (Ethyca, Apache-2.0),
``fideslang/default_taxonomy/data_categories.py`` (``DEFAULT_DATA_CATEGORIES``), copied
key by key with each category's name. The package itself is not a dependency: it pins
``pydantic<2.13`` and would downgrade the pydantic that sqlmodel uses here. To move to a
newer taxonomy, regenerate this table from that file and bump ``SOURCE``.
"""

from __future__ import annotations

import difflib
from typing import Final

SOURCE: Final = "fideslang 3.1.4, default_taxonomy/data_categories.py"

DATA_CATEGORIES: Final[dict[str, str]] = {
    'user': 'User Data',
    'user.account': 'Account Information',
    'user.account.settings': 'Account Settings',
    'user.account.username': 'Account Username',
    'user.authorization': 'Authorization Information',
    'user.authorization.credentials': 'Account password',
    'user.authorization.biometric': 'Biometric Credentials',
    'user.authorization.password': 'Password',
    'user.behavior': 'Observed Behavior',
    'user.behavior.browsing_history': 'Browsing History',
    'user.behavior.media_consumption': 'Media Consumption',
    'user.behavior.purchase_history': 'Purchase History',
    'user.behavior.search_history': 'Search History',
    'user.biometric': 'Biometric Data',
    'user.biometric.fingerprint': 'Fingerprint',
    'user.biometric.retinal': 'Retina Scan',
    'user.biometric.voice': 'Voice Recording',
    'user.biometric.health': 'Biometric Health Data',
    'user.childrens': "Children's Data",
    'user.contact': 'Contact Data',
    'user.contact.address': 'User Contact Address',
    'user.contact.address.city': 'User Contact City',
    'user.contact.address.country': 'User Contact Country',
    'user.contact.email': 'User Contact Email',
    'user.contact.phone_number': 'User Contact Phone Number',
    'user.contact.url': 'User Website',
    'user.contact.fax_number': 'Fax Number',
    'user.contact.address.postal_code': 'User Contact Postal Code',
    'user.contact.address.state': 'User Contact State',
    'user.contact.address.street': 'User Contact Street',
    'user.contact.organization': 'Organization',
    'user.content': 'User Content',
    'user.content.private': 'Private Content',
    'user.content.public': 'Public Content',
    'user.content.self_image': 'User Image',
    'user.demographic': 'Demographic Data',
    'user.demographic.age_range': 'Age Range',
    'user.demographic.date_of_birth': 'Birth Date',
    'user.demographic.gender': 'Gender',
    'user.demographic.language': 'Language',
    'user.demographic.marital_status': 'Marital Status',
    'user.demographic.political_opinion': 'Political Opinion',
    'user.demographic.profile': 'User Profile Data',
    'user.demographic.race_ethnicity': 'Race',
    'user.demographic.religious_belief': 'Religion',
    'user.demographic.sexual_orientation': 'Sexual Orientation',
    'user.location': 'Location Data',
    'user.location.imprecise': 'Imprecise Subject Location',
    'user.location.precise': 'Precise Subject Location',
    'user.device': 'Device Data',
    'user.device.cookie': 'Device Cookie',
    'user.device.cookie_id': 'Cookie ID',
    'user.device.device_id': 'Device ID',
    'user.device.ip_address': 'IP Address',
    'user.payment': 'Payment Data',
    'user.social': 'Social Data',
    'user.unique_id': 'Unique ID',
    'user.unique_id.pseudonymous': 'Pseudonymous User ID',
    'user.telemetry': 'Telemetry Data',
    'user.user_sensor': 'User Sensor Data',
    'user.workplace': 'Workplace',
    'user.sensor': 'Sensor Data',
    'user.financial': 'Financial Data',
    'user.financial.bank_account': 'Bank Account Information',
    'user.financial.credit_card': 'Credit Card Information',
    'user.government_id': 'Government ID',
    'user.government_id.birth_certificate': 'Birth Certificate',
    'user.government_id.drivers_license_number': "Driver's License Number",
    'user.government_id.immigration': 'Immigration ID',
    'user.government_id.national_identification_number': 'National Identification Number',
    'user.government_id.passport_number': 'Passport Number',
    'user.government_id.vehicle_registration': 'Vehicle Registration',
    'user.health_and_medical': 'Health and Medical Data',
    'user.health_and_medical.genetic': "User's Genetic Data",
    'user.health_and_medical.insurance_beneficiary_id': 'Medical Insurance ID',
    'user.health_and_medical.record_id': 'Medical Record ID',
    'user.name': 'Name',
    'user.name.first': 'First Name',
    'user.name.last': 'Last Name',
    'user.criminal_history': 'Criminal History',
    'user.privacy_preferences': 'Privacy Preferences',
    'user.job_title': 'Job Title',
    'system': 'System Data',
    'system.authentication': 'Authentication Data',
    'system.operations': 'Operations Data',
}


def is_category(key: str) -> bool:
    return key in DATA_CATEGORIES


def nearest_categories(key: str, n: int = 3) -> list[str]:
    """The valid categories closest to ``key`` (for a load error's hint)."""
    return difflib.get_close_matches(key, DATA_CATEGORIES, n=n, cutoff=0.5)

